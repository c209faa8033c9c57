"""Contracts of the placement backends: where load runs and what the cluster is made of.

Three roles, one registry each (see :class:`Backends`):

* **control planes** — bring up a Kubernetes control plane to benchmark (``local``: etcd +
  kube-apiserver + controller-manager + scheduler as local processes);
* **runner groups** — place runners that generate load and gather their reports (``helm``: a
  release in the cluster, its runners pods of a Job);
* **node pools** — make the cluster look bigger with virtual nodes (``kwok`` via Helm;
  ``embedded``: an in-process simulator).
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs

from kperf_core.registry import PluginRegistry

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@attrs.frozen
class ControlPlaneStatus:
    """What :meth:`ControlPlane.status` reports."""

    running: bool
    kubeconfig: Path | None
    server: str | None
    #: component name → {"pid": int | None, "alive": bool, "log": str}
    components: dict[str, dict[str, Any]]
    #: The server's ``gitVersion`` from ``/version`` when it answers.
    version: str | None = None


class ControlPlane(abc.ABC):
    """A Kubernetes control plane kperf starts and stops itself, its state kept in a directory."""

    name: ClassVar[str]

    def __init__(self, state_dir: Path, **options: Any) -> None:
        self.state_dir = state_dir

    @abc.abstractmethod
    def up(self) -> ControlPlaneStatus:
        """Start (or recover) the control plane; return once it serves requests."""

    @abc.abstractmethod
    def down(self) -> None:
        """Stop every process and remove all state; safe to call on a crashed or absent plane."""

    @abc.abstractmethod
    def status(self) -> ControlPlaneStatus:
        """Report what is running, without changing anything."""


@attrs.frozen(kw_only=True)
class RunnerGroupPlan:
    """What ``kperf runnergroup run`` asks a backend to place: one or more runner groups.

    ``specs`` are runner-group spec documents (YAML text: ``count``, ``loadProfile``,
    ``nodeAffinity``, ``serviceAccount``), already validated, with ``--affinity`` applied.
    """

    specs: tuple[str, ...]
    runner_image: str
    priority_level: str = "workload-low"
    matching_precedence: int = 1000
    #: required node affinity of the server (label key → allowed values)
    node_affinity: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    runner_verbosity: int = 2
    #: tolerations (Kubernetes objects) of the server and runner pods
    tolerations: tuple[Mapping[str, str], ...] = ()


class RunnerGroupBackend(abc.ABC):
    """Places runner groups (``count`` runners each, executing a load profile) in the cluster of
    ``kubeconfig``/``context`` and gathers their results.

    One set of runner groups per cluster at a time, as upstream: :meth:`run` refuses while one
    exists, :meth:`delete` removes it.
    """

    name: ClassVar[str]

    def __init__(self, kubeconfig: Path | None, context: str | None, **options: Any) -> None:
        self.kubeconfig = kubeconfig
        self.context = context

    @abc.abstractmethod
    def run(self, plan: RunnerGroupPlan, wait: float) -> None:
        """Place the groups; return once their server answers (at most ``wait`` seconds).
        Nothing stays behind when it fails."""

    @abc.abstractmethod
    def status(self) -> list[dict[str, Any]]:
        """Upstream's ``GET /v1/runnergroups``: one ``{name, spec, status}`` per group."""

    @abc.abstractmethod
    def result(self, wait: bool, timeout: float) -> dict[str, Any]:
        """The merged report (``kperf runner run``'s shape plus ``runnerGroups``); with ``wait``,
        block until every runner finished or ``timeout`` seconds passed."""

    @abc.abstractmethod
    def delete(self) -> None:
        """Remove everything :meth:`run` created; absent is fine."""


@attrs.frozen(kw_only=True)
class NodePoolSpec:
    """One pool of virtual nodes, as ``kperf virtualcluster nodepool add`` describes it
    (upstream's flags and defaults)."""

    name: str
    nodes: int = 10
    cpu: int = 8
    memory_gib: int = 16
    max_pods: int = 110
    #: where the pool's controllers may run (kwok): label key → allowed values
    affinity: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    #: extra labels on every node
    node_labels: Mapping[str, str] = attrs.field(factory=dict)
    #: one ``spec.providerID`` for every node (so cloud controllers leave them alone)
    shared_provider_id: str = ""

    def problems(self) -> list[str]:
        """Everything wrong with the spec, as upstream validates it plus a DNS-label name."""
        found = [
            f"--{flag} must be > 0 (got {value})"
            for flag, value in (
                ("nodes", self.nodes),
                ("cpu", self.cpu),
                ("memory", self.memory_gib),
                ("max-pods", self.max_pods),
            )
            if value <= 0
        ]
        if not _DNS_LABEL.fullmatch(self.name):
            found.append(
                f"name {self.name!r} must be a DNS label: lowercase letters, digits and '-', "
                "starting and ending with a letter or digit, at most 63 characters"
            )
        elif self.name.endswith("-controller"):
            found.append(f"name {self.name!r} must not end with '-controller' (kwok's releases)")
        return found


@attrs.frozen
class NodePoolStatus:
    """A pool as ``nodepool list`` shows it: read from the cluster's Node objects."""

    name: str
    backend: str
    nodes: int
    ready: int
    cpu: str
    memory: str
    max_pods: str
    #: ``Ready`` when every node is, ``NotReady`` when none is, ``Degraded`` in between.
    status: str = attrs.field(init=False)

    @status.default
    def _status(self) -> str:
        if self.ready == self.nodes:
            return "Ready"
        return "NotReady" if self.ready == 0 else "Degraded"


class NodePoolBackend(abc.ABC):
    """Creates and deletes pools of virtual nodes in the cluster of ``kubeconfig``/``context``.

    Listing is common to every backend (the pools are Node objects with kperf's labels); a
    backend makes those nodes come alive and keeps them alive.
    """

    name: ClassVar[str]

    def __init__(self, kubeconfig: Path | None, context: str | None, **options: Any) -> None:
        self.kubeconfig = kubeconfig
        self.context = context

    @abc.abstractmethod
    def add(self, spec: NodePoolSpec, wait: float) -> None:
        """Create the pool and return once its nodes are Ready (at most ``wait`` seconds)."""

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Remove the pool: its pods, nodes and leases, then what ran them; absent is fine."""


@attrs.frozen
class Backends:
    """What ``kperf_register_backends`` receives: one registry view per backend role."""

    control_planes: PluginRegistry[type[ControlPlane]]
    runner_groups: PluginRegistry[type[RunnerGroupBackend]]
    node_pools: PluginRegistry[type[NodePoolBackend]]
