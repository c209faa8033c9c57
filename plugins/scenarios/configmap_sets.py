"""ConfigMap data sets (``runkperf data configmap``; the objects ``list_configmaps`` and
``read_update`` read): ``total`` ConfigMaps of ``size`` random letters, created in parallel
batches of ``group_size`` under a client-side rate limit, found and removed again by labels.

Names and labels are upstream's: ``runkperf-cm-<set>-<i>``, ``app=runkperf``, ``cmName=<set>``,
``ownerID=<first index of its batch>``.
"""

from __future__ import annotations

import collections
import random
import string
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs

from kperf_core.errors import ConfigError

from .data_sets import CONFIGMAP_APP, ensure_namespace, namespace_exists, release_namespace
from .throttle import TokenBucket

APP = CONFIGMAP_APP
SET_LABEL = "cmName"
BATCH_LABEL = "ownerID"
#: The API server refuses objects above 1 MiB (etcd's request limit); the rest is metadata room.
MAX_SIZE = 1024 * 1024 - 4096
#: Threads per batch: the rate limit, not the thread count, sets the pace; more threads than
#: the client's connection pool (10) would only open and drop connections.
MAX_WORKERS = 8


def configmap_name(set_name: str, index: int) -> str:
    return f"runkperf-cm-{set_name}-{index}"


def set_selector(set_name: str | None = None) -> str:
    selector = f"{APP[0]}={APP[1]}"
    return f"{selector},{SET_LABEL}={set_name}" if set_name else selector


@attrs.frozen(kw_only=True)
class ConfigMapSet:
    """What ``data configmap add`` creates (upstream's flags and defaults).

    Upstream also refuses a group size above the total — which its own defaults (30 and 10) are;
    here such a group is simply one batch.
    """

    name: str
    namespace: str = "default"
    size: int = 100
    group_size: int = 30
    total: int = 10

    def problems(self) -> list[str]:
        found = [
            f"--{flag} must be > 0 (got {value})"
            for flag, value in (
                ("size", self.size),
                ("group-size", self.group_size),
                ("total", self.total),
            )
            if value <= 0
        ]
        if self.size > MAX_SIZE:
            found.append(f"--size must be <= {MAX_SIZE} bytes (a ConfigMap is at most 1 MiB)")
        return found

    def batches(self) -> list[range]:
        return [
            range(start, min(start + self.group_size, self.total))
            for start in range(0, self.total, self.group_size)
        ]


@attrs.frozen
class ConfigMapSetStatus:
    """A set as ``data configmap list`` shows it, read back from the cluster."""

    name: str
    namespace: str
    size: int
    group_size: int
    total: int


def create_set(
    api: Any,
    spec: ConfigMapSet,
    limiter: TokenBucket,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Create the set, batch after batch; all or nothing (an interrupted or failed add removes
    what it created). ``progress(created, total)`` is called after each batch."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    problems = spec.problems()
    if problems:
        raise ConfigError("; ".join(problems))
    if (
        namespace_exists(api, spec.namespace)
        and core.list_namespaced_config_map(
            spec.namespace, label_selector=set_selector(spec.name), limit=1
        ).items
    ):
        raise ConfigError(
            f"configmap set {spec.name!r} exists already in namespace {spec.namespace!r} "
            "(delete it first)"
        )
    ensure_namespace(api, spec.namespace)

    def create(body: dict[str, Any]) -> None:
        limiter.take()
        core.create_namespaced_config_map(spec.namespace, body)

    try:
        with ThreadPoolExecutor(min(spec.group_size, MAX_WORKERS)) as pool:
            for batch in spec.batches():
                # one batch at a time, as upstream: the next starts when this one is complete
                list(pool.map(create, [_manifest(spec, i, batch.start) for i in batch]))
                if progress:
                    progress(batch.stop, spec.total)
    except BaseException:
        delete_set(api, spec.namespace, spec.name, missing_ok=True)
        raise


def list_sets(api: Any, namespace: str, names: Iterable[str] = ()) -> list[ConfigMapSetStatus]:
    """The sets in ``namespace`` (only ``names`` if given), computed from the objects' labels."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    if not namespace_exists(api, namespace):
        return []
    by_set: dict[str, list[Any]] = collections.defaultdict(list)
    for cm in core.list_namespaced_config_map(namespace, label_selector=set_selector()).items:
        by_set[cm.metadata.labels.get(SET_LABEL, "")].append(cm)
    wanted = set(names)
    return [
        ConfigMapSetStatus(
            name=name,
            namespace=namespace,
            size=len((members[0].data or {}).get("data", "")),
            # Batches are labelled with their first index; the largest batch is the group size
            # (upstream guessed it from the first ownerID it met, which list order can defeat).
            group_size=max(collections.Counter(_batch_of(cm) for cm in members).values()),
            total=len(members),
        )
        for name, members in sorted(by_set.items())
        if not wanted or name in wanted
    ]


def delete_set(api: Any, namespace: str, name: str, *, missing_ok: bool = False) -> int:
    """Delete the set's ConfigMaps (one collection delete) and, with the last set, a namespace
    kperf created for it. Returns how many ConfigMaps there were."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    found = (
        len(core.list_namespaced_config_map(namespace, label_selector=set_selector(name)).items)
        if namespace_exists(api, namespace)
        else 0
    )
    if not found and not missing_ok:
        raise ConfigError(f"configmap set {name!r}: none found in namespace {namespace!r}")
    if found:
        core.delete_collection_namespaced_config_map(namespace, label_selector=set_selector(name))
    release_namespace(api, namespace)
    return found


def _manifest(spec: ConfigMapSet, index: int, batch_start: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(spec.name, index),
            "labels": {APP[0]: APP[1], SET_LABEL: spec.name, BATCH_LABEL: str(batch_start)},
        },
        "data": {"data": "".join(random.choices(string.ascii_letters, k=spec.size))},
    }


def _batch_of(cm: Any) -> str:
    return str(cm.metadata.labels.get(BATCH_LABEL, ""))
