"""The engine's own ``kperf_run`` implementation, registered like any other plugin; wrappers
from other plugins (server metrics, SLO checks) run around it."""

from __future__ import annotations

from typing import Any

from kperf_core import hookimpl
from kperf_core.engine import LoadRun, run_profile
from kperf_core.report import runner_report


@hookimpl(trylast=True)
def kperf_run(run: LoadRun) -> dict[str, Any]:
    results = run_profile(run)
    return runner_report(results, run.endpoint.server, run.raw_data)
