"""The local control plane: a real etcd + kube-apiserver (+ controller-manager, scheduler) started
from local binaries on loopback — kperf's zero-setup default target and its integration-test bed."""

from __future__ import annotations

from kperf_core import hookimpl
from kperf_core.backends import Backends
from kperf_core.commands import CommandRegistry

from .control_plane import LocalControlPlane


@hookimpl
def kperf_register_backends(backends: Backends) -> None:
    backends.control_planes.add(LocalControlPlane)


@hookimpl
def kperf_register_commands(commands: CommandRegistry) -> None:
    from .commands import local_group

    commands.add(local_group)
