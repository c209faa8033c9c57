"""``runkperf bench timeseries_replay``: a traffic spike replayed in three phases — a baseline,
a spike, a recovery — by 10 runners listing pods (cache and etcd).

Difference from upstream, on purpose: ``--duration`` sets every phase's length, as its help
always said (upstream changed phase 1 only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from kperf_core import hookimpl
from kperf_core.durations import Duration
from kperf_core.scenarios import BenchReport, Scenario

from .case_specs import COMMON_OPTIONS, load_spec, runner_summary, tweak_spec

if TYPE_CHECKING:
    from kperf_core.bench_run import BenchRun


class TimeseriesReplay(Scenario):
    """Three phases of 10 runners listing pods: 30 s at 10/s, a 20 s spike at 100/s, 30 s of
    recovery at 25/s (per runner), the share of quorum LISTs rising in the spike."""

    name = "timeseries_replay"
    summary = "a traffic spike in three phases (baseline, spike, recovery) listing pods"
    options = (
        click.Option(["--duration"], type=Duration(), default="0s", show_default=True,
                     help="Length of each phase (0s: upstream's 30s, 20s and 30s); seconds or "
                     "30s, 1m; rounded up to whole seconds."),
        *COMMON_OPTIONS,
    )  # fmt: skip

    def run(self, bench: BenchRun, options: Mapping[str, Any]) -> BenchReport:
        spec = load_spec(self.name)
        for phase in spec["loadProfile"]["specs"]:
            phase["duration"] = options["duration"] or phase["duration"]
            phase["contentType"] = options["content_type"]
        spec = tweak_spec(spec, bench.settings)
        result = bench.run_runner_group(spec)
        phases = [
            {"rate": p["rate"], "durationSeconds": p["duration"]}
            for p in spec["loadProfile"]["specs"]
        ]
        description = (
            "Environment: the cluster as it is (no nodes or workload of the case's own).\n"
            f"Runners: {runner_summary(spec)}."
        )
        info = {"phases": phases}
        return BenchReport(description=description, load_spec=spec, result=result, info=info)


@hookimpl
def kperf_register_scenarios(registry):  # type: ignore[no-untyped-def]
    registry.add(TimeseriesReplay)
