"""Built-in benchmark scenarios (node10_job1_pod100 and the other runkperf cases)."""
