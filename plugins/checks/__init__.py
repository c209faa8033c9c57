"""Built-in report checks (SLO verdicts, …)."""
