"""The engine's own ``kperf_run`` implementation, registered like any other plugin; wrappers
from other plugins (the server view) run around it and receive the report it returns, complete."""

from __future__ import annotations

from typing import Any

from kperf_core import __version__, hookimpl
from kperf_core.engine import LoadRun, run_profile
from kperf_core.report import runner_report
from kperf_core.report_model import REPORT_FORMAT, Report, typed_run_report


@hookimpl(trylast=True)
def kperf_run(run: LoadRun) -> Report:
    results = run_profile(run)
    document = runner_report(results, run.endpoint.server, run.raw_data)
    document["kperf"] = run_facts(run)
    return typed_run_report(document)


def run_facts(run: LoadRun) -> dict[str, Any]:
    """The report's ``kperf`` section: who measured, against what, and how the run ended."""
    return {
        "version": __version__,
        "server": run.endpoint.server,
        "serverVersion": run.server_version,
        "seed": run.settings.seed,
        "workers": run.workers,
        "interrupted": run.settings.interrupted(),
        "reportFormat": REPORT_FORMAT,
    }
