"""kperf's own tests use the same opt-in pytest plugin offered to plugin authors."""

pytest_plugins = ["kperf_core.testing"]
