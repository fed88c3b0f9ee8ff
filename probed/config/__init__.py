"""Config: the schema building blocks, a generic YAML loader, and probed's own model."""
