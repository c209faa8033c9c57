"""``runkperf bench read_update``: ConfigMaps that 10 runners list and patch while one watch per
ConfigMap (from this machine, as upstream's from the runkperf host) receives every change.

Differences from upstream, on purpose: ``--read-update-configmap-size`` is bytes everywhere (its
help said MiB, its description KiB); the watches' events are counted (under a lock) and reported;
the ConfigMaps carry the run's label, so an aborted run's are found and removed.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import click

from kperf_core import hookimpl
from kperf_core.scenarios import BenchReport, BenchSettings, Scenario

from .case_specs import COMMON_OPTIONS, load_spec, runner_summary, total_option, tweak_spec
from .configmap_sets import ConfigMapSet, configmap_name, create_set
from .throttle import TokenBucket

if TYPE_CHECKING:
    from kperf_core.bench_run import BenchRun

#: Upstream's limits: each ConfigMap at most 1 KiB, all of them at most 2 MiB.
MAX_SIZE, MAX_TOTAL_BYTES = 1024, 2 * 1024 * 1024
#: Upstream creates the ConfigMaps two at a time.
GROUP_SIZE = 2
CREATE_QPS, CREATE_BURST = 30, 10
#: Seconds a watch call lasts before it is renewed (how soon a watcher notices the run's end).
WATCH_WINDOW_SECONDS = 5


@attrs.define
class WatchCounts:
    events: int = 0
    lock: threading.Lock = attrs.field(factory=threading.Lock)

    def add(self, n: int) -> None:
        with self.lock:
            self.events += n


class ReadUpdate(Scenario):
    """--read-update-configmap-total ConfigMaps of --read-update-configmap-size bytes, each
    watched; 10 runners at 10/s list them from the cache (--read-ratio of the requests) and
    merge-patch a label onto them (the rest)."""

    name = "read_update"
    summary = "ConfigMaps listed and patched by 10 runners while each is watched"
    options = (
        total_option(3600, "Requests per runner."),
        click.Option(["--read-update-namespace"], default="default", show_default=True,
                     help="Namespace of the ConfigMaps (created for the run when missing)."),
        click.Option(["--read-update-configmap-total"], type=click.IntRange(min=1), default=100,
                     show_default=True, help="ConfigMaps, each watched."),
        click.Option(["--read-update-configmap-size"], type=click.IntRange(min=1), default=1024,
                     show_default=True, help=f"Bytes per ConfigMap (at most {MAX_SIZE})."),
        click.Option(["--read-update-name-pattern"], default="kperf-read-update",
                     show_default=True, help="ConfigMaps are runkperf-cm-<pattern>-<i>."),
        click.Option(["--read-ratio"], type=click.FloatRange(min=0, max=1, min_open=True),
                     default=0.5, show_default=True, help="Share of reads among requests."),
        *COMMON_OPTIONS,
    )  # fmt: skip

    def configmaps(self, settings: BenchSettings, options: Mapping[str, Any]) -> ConfigMapSet:
        return ConfigMapSet(
            name=options["read_update_name_pattern"],
            namespace=options["read_update_namespace"],
            size=options["read_update_configmap_size"],
            group_size=GROUP_SIZE,
            total=settings.scaled(options["read_update_configmap_total"]),
        )

    def check(self, settings: BenchSettings, options: Mapping[str, Any]) -> list[str]:
        configmaps = self.configmaps(settings, options)
        problems = configmaps.problems()
        if configmaps.size > MAX_SIZE:
            problems.append(f"--read-update-configmap-size must be <= {MAX_SIZE} bytes")
        if configmaps.size * configmaps.total > MAX_TOTAL_BYTES:
            problems.append(
                "--read-update-configmap-total times --read-update-configmap-size must be <= "
                f"{MAX_TOTAL_BYTES} bytes"
            )
        return problems

    def run(self, bench: BenchRun, options: Mapping[str, Any]) -> BenchReport:
        configmaps = attrs.evolve(self.configmaps(bench.settings, options), labels=bench.labels)
        namespace = bench.use_namespace(configmaps.namespace)
        bench.on_cleanup(bench.delete_labelled, "config_map", namespace)
        bench.progress(f"configmaps: creating {configmaps.total} of {configmaps.size} B")
        create_set(
            bench.api,
            configmaps,
            TokenBucket(CREATE_QPS, CREATE_BURST),
            progress=lambda done, total: bench.update(f"configmaps: {done}/{total} created"),
        )
        counts = WatchCounts()
        # a connection per watch; closed after every watcher stopped (cleanup is LIFO)
        watch_api = bench.api_with_connections(configmaps.total + 2)
        for i in range(configmaps.total):
            name = configmap_name(configmaps.name, i)
            bench.in_background(f"watch-{name}", _watch(watch_api, namespace, name, counts))
        spec = self.spec(bench, options, configmaps)
        result = bench.run_runner_group(spec)
        description = (
            f"Environment: {configmaps.total} ConfigMaps of {configmaps.size} B in namespace "
            f"{namespace}, each watched from this machine.\n"
            f"Runners: {runner_summary(spec)}; {options['read_ratio']:.0%} stale LISTs of the "
            "namespace's ConfigMaps, the rest merge PATCHes of a label."
        )
        info = {
            "configmapSizeInBytes": configmaps.size,
            "configmapAmount": configmaps.total,
            "readRatio": options["read_ratio"],
            "configmapsPatched": _patched(bench.api, namespace, bench.labels),
            "watchEvents": counts.events,
        }
        return BenchReport(description=description, load_spec=spec, result=result, info=info)

    def spec(
        self, bench: BenchRun, options: Mapping[str, Any], configmaps: ConfigMapSet
    ) -> dict[str, Any]:
        """Upstream's tweaks: the namespace, the shares from --read-ratio, the patched names."""
        spec = load_spec(self.name)
        read, patch = spec["loadProfile"]["specs"][0]["requests"]
        read["shares"] = round(options["read_ratio"] * 100)
        patch["shares"] = 100 - read["shares"]
        read["staleList"]["namespace"] = patch["patch"]["namespace"] = configmaps.namespace
        patch["patch"]["name"] = f"runkperf-cm-{configmaps.name}"
        patch["patch"]["keySpaceSize"] = configmaps.total
        if not patch["shares"]:
            spec["loadProfile"]["specs"][0]["requests"] = [read]
        return tweak_spec(
            spec, bench.settings, total=options["total"], content_type=options["content_type"]
        )


def _watch(api: Any, namespace: str, name: str, counts: WatchCounts) -> Any:
    def work(stop: threading.Event) -> None:
        from kubernetes import client, watch

        core = client.CoreV1Api(api)
        watcher = watch.Watch()
        # Renewed from where it left off: one ADDED event at first, then only changes.
        version = None
        while not stop.is_set():
            events = watcher.stream(
                core.list_namespaced_config_map,
                namespace,
                field_selector=f"metadata.name={name}",
                timeout_seconds=WATCH_WINDOW_SECONDS,
                **({"resource_version": version} if version else {}),
            )
            for _event in events:
                counts.add(1)
                if stop.is_set():
                    return
            version = watcher.resource_version

    return work


def _patched(api: Any, namespace: str, labels: Mapping[str, str]) -> int:
    """The run's ConfigMaps that carry the runners' patch."""
    from kubernetes import client

    selector = ",".join(f"{k}={v}" for k, v in labels.items()) + ",test-label=mutation-test"
    return len(
        client.CoreV1Api(api).list_namespaced_config_map(namespace, label_selector=selector).items
    )


@hookimpl
def kperf_register_scenarios(registry):  # type: ignore[no-untyped-def]
    registry.add(ReadUpdate)
