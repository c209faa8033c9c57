"""Virtual node pools: ``kperf virtualcluster nodepool …`` and the backends behind it.

``nodes.py`` holds what every backend shares (upstream's Node objects, listing pools);
``embedded.py`` + ``simulator.py`` make the nodes live without any container runtime.
"""

from __future__ import annotations

import copy

from kperf_core import hookimpl
from kperf_core.backends import Backends
from kperf_core.commands import CommandRegistry

from .embedded import EmbeddedNodePool
from .kwok import KwokNodePool


@hookimpl
def kperf_register_backends(backends: Backends) -> None:
    backends.node_pools.add(EmbeddedNodePool)
    backends.node_pools.add(KwokNodePool)


@hookimpl
def kperf_register_commands(commands: CommandRegistry) -> None:
    from .commands import virtualcluster_group

    commands.add(virtualcluster_group)
    alias = copy.copy(virtualcluster_group)
    alias.name, alias.hidden = "vc", True  # upstream's alias
    commands.add(alias)
