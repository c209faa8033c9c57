"""Built-in placement backends: control planes, runner groups, node pools."""
