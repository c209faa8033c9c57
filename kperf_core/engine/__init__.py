"""The load engine: transport (libcurl multi + epoll), pacing and measurement per spec.

``run_profile`` runs a profile's specs back to back, each with its own connection pool and
limits (upstream sizes every spec's pool from specs[0]; kperf does not copy that). Every spec's
request types are made and prepared before the first request, so that what the cluster lacks (a
put's missing objects) is said before anything is measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from kperf_core.engine.spec_runner import RunSettings, SpecPlan, SpecResult, SpecRunner

if TYPE_CHECKING:
    from kperf_core.kube import ClusterEndpoint
    from kperf_core.profile import LoadProfile
    from kperf_core.registry import Registry
    from kperf_core.request_types import RequestType

__all__ = ["LoadRun", "RunSettings", "SpecResult", "run_profile"]


@attrs.frozen
class LoadRun:
    """One load run, as the ``kperf_run`` hook receives it."""

    profile: LoadProfile
    endpoint: ClusterEndpoint
    request_types: Registry[type[RequestType]]
    settings: RunSettings = attrs.field(factory=RunSettings)
    #: include upstream's raw ``latenciesByURL`` and ``errors`` arrays
    raw_data: bool = False


def run_profile(run: LoadRun) -> list[SpecResult]:
    plans = [SpecPlan(spec, run.request_types, run.settings) for spec in run.profile.specs]
    results: list[SpecResult] = []
    try:
        for plan in plans:
            plan.prepare(run.endpoint)
        for plan in plans:
            try:
                result = SpecRunner(plan, run.endpoint, run.settings).run()
            finally:
                plan.cleanup()  # a spec's objects go before the next spec starts
            results.append(result)
            if result.interrupted:
                break  # Ctrl-C: later specs never start; what ran is reported
    finally:
        for plan in plans:
            plan.cleanup()  # specs that were prepared but never ran
    return results
