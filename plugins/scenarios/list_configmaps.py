"""``runkperf bench list_configmaps``: a set of ConfigMaps (``runkperf data configmap``'s) listed
by 10 runners from the cache and from etcd.

Differences from upstream, on purpose: the runners list the bench's own namespace (upstream's
profile listed ConfigMaps cluster-wide, so the figures depended on whatever else the cluster
held); ``runningTime`` is the measured time of the runner group (upstream read an int flag as a
duration and always reported ``0s``); ``--duration`` > 0 wins over ``--total``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import click

from kperf_core import hookimpl
from kperf_core.durations import Duration
from kperf_core.scenarios import BenchReport, BenchSettings, Scenario

from .case_specs import load_spec, runner_summary, tweak_spec
from .configmap_sets import ConfigMapSet, create_set
from .throttle import TokenBucket

if TYPE_CHECKING:
    from kperf_core.bench_run import BenchRun

NAMESPACE = "kperf-configmaps-bench"
SET_NAME = "runkperf-bench"
#: ``runkperf data configmap add``'s client rate, which upstream's case ran with.
CREATE_QPS, CREATE_BURST = 30, 10


class ListConfigmaps(Scenario):
    """ConfigMaps of --size bytes (--configmap-amount of them, created --group-size at a time),
    listed by 10 runners at 10/s each: stale LIST (cache) and quorum LIST (etcd), half each."""

    name = "list_configmaps"
    summary = "1024 ConfigMaps of 1000 B; 10 runners listing them (cache and etcd)"
    options = (
        click.Option(["--size"], type=click.IntRange(min=1), default=1000, show_default=True,
                     help="Bytes of data per ConfigMap."),
        click.Option(["--group-size"], type=click.IntRange(min=1), default=100, show_default=True,
                     help="ConfigMaps created in parallel per batch."),
        click.Option(["--configmap-amount"], type=click.IntRange(min=1), default=1024,
                     show_default=True, help="ConfigMaps in all."),
        click.Option(["--total"], type=click.IntRange(min=1), default=1000, show_default=True,
                     help="Requests per runner."),
        click.Option(["--duration"], type=Duration(), default="0s", show_default=True,
                     help="How long each runner runs instead of --total (0s: use --total); "
                     "seconds or 30s, 5m; rounded up to whole seconds."),
        click.Option(["--content-type"], type=click.Choice(["json", "protobuf"]), default="json",
                     show_default=True, help="Content type the runners ask for."),
    )  # fmt: skip

    def configmaps(self, settings: BenchSettings, options: Mapping[str, Any]) -> ConfigMapSet:
        return ConfigMapSet(
            name=SET_NAME,
            namespace=NAMESPACE,
            size=options["size"],
            group_size=options["group_size"],
            total=settings.scaled(options["configmap_amount"]),
        )

    def check(self, settings: BenchSettings, options: Mapping[str, Any]) -> list[str]:
        return self.configmaps(settings, options).problems()

    def run(self, bench: BenchRun, options: Mapping[str, Any]) -> BenchReport:
        namespace = bench.namespace(NAMESPACE)
        configmaps = attrs.evolve(self.configmaps(bench.settings, options), labels=bench.labels)
        bench.progress(f"configmaps: creating {configmaps.total} of {configmaps.size} B")
        create_set(
            bench.api,
            configmaps,
            TokenBucket(CREATE_QPS, CREATE_BURST),
            progress=lambda done, total: bench.update(f"configmaps: {done}/{total} created"),
        )
        spec = load_spec(self.name)
        for item in spec["loadProfile"]["specs"][0]["requests"]:
            next(iter(item.values()))["namespace"] = namespace
        spec = tweak_spec(
            spec,
            bench.settings,
            total=None if options["duration"] else options["total"],
            duration=options["duration"],
            content_type=options["content_type"],
        )
        result = bench.run_runner_group(spec)
        description = (
            f"Environment: {configmaps.total} ConfigMaps of {configmaps.size} B in namespace "
            f"{namespace} (created {configmaps.group_size} at a time).\n"
            f"Runners: {runner_summary(spec)}; listing the namespace's ConfigMaps."
        )
        info = {
            "configmapSizeInBytes": configmaps.size,
            "configmapAmount": configmaps.total,
        }
        return BenchReport(description=description, load_spec=spec, result=result, info=info)


@hookimpl
def kperf_register_scenarios(registry):  # type: ignore[no-untyped-def]
    registry.add(ListConfigmaps)
