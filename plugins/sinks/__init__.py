"""Built-in result sinks (json, csv, html, …)."""
