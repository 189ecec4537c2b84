"""One module per operation, each exposing an unloaded-flow factory."""
