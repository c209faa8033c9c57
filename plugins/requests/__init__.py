"""Built-in request types (staleList, quorumList, watch, get, put, patch, pod logs, …)."""
