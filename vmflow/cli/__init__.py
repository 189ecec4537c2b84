"""cliff commands of the vmflow CLI."""
