"""The load engine: transport (libcurl multi + epoll), pacing and measurement per spec.

``run_profile`` runs a profile's specs back to back, each with its own connection pool and
limits (upstream sizes every spec's pool from specs[0]; kperf does not copy that), in this
process or shared by several engine processes (``workers``, see :mod:`kperf_core.engine.workers`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from kperf_core.engine.spec_runner import RunSettings, SpecResult, run_specs

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
    #: engine processes sharing each spec (1: this process)
    workers: int = 1
    #: the API server's version, as the command read it before the run (the report says it)
    server_version: str = ""


def run_profile(run: LoadRun) -> list[SpecResult]:
    if run.workers > 1:
        from kperf_core.engine.workers import run_in_workers

        return run_in_workers(run, run.workers)
    return run_specs(run.profile.specs, run.request_types, run.endpoint, run.settings)
