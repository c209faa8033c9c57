"""Built-in CLI command groups that belong to no single feature."""
