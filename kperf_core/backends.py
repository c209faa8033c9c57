"""Contracts of the placement backends: where load runs and what the cluster is made of.

Three roles, one registry each (see :class:`Backends`):

* **control planes** — bring up a Kubernetes control plane to benchmark (``local``: etcd +
  kube-apiserver + controller-manager + scheduler as local processes);
* **runner groups** — place runner processes that generate load (``helm``: a release in the
  cluster; ``local``: local processes);
* **node pools** — make the cluster look bigger with virtual nodes (``kwok`` via Helm;
  ``embedded``: an in-process simulator).
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar

import attrs

from kperf_core.registry import PluginRegistry


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


class RunnerGroupBackend(abc.ABC):
    """Places a runner group (``count`` runners executing one load profile) somewhere."""

    name: ClassVar[str]


class NodePoolBackend(abc.ABC):
    """Creates, lists and deletes pools of virtual nodes."""

    name: ClassVar[str]


@attrs.frozen
class Backends:
    """What ``kperf_register_backends`` receives: one registry view per backend role."""

    control_planes: PluginRegistry[type[ControlPlane]]
    runner_groups: PluginRegistry[type[RunnerGroupBackend]]
    node_pools: PluginRegistry[type[NodePoolBackend]]
