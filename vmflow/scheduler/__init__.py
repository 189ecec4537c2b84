"""Host selection: filters and weighers."""
