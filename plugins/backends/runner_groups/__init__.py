"""Runner groups: ``kperf runnergroup …`` and the backends behind it.

``helm.py`` places the groups (the ``runnergroup`` chart); ``server.py`` is what runs in the
server pod, ``jobs.py`` the objects it creates, ``store.py`` where runners' results are kept;
``client.py`` is how the CLI reaches the server; ``specs.py`` parses the command's flags.
"""

from __future__ import annotations

from kperf_core import hookimpl
from kperf_core.backends import Backends
from kperf_core.commands import CommandRegistry

from .helm import HelmRunnerGroups


@hookimpl
def kperf_register_backends(backends: Backends) -> None:
    backends.runner_groups.add(HelmRunnerGroups)


@hookimpl
def kperf_register_commands(commands: CommandRegistry) -> None:
    from . import pod_commands  # noqa: F401  (adds the hidden server and runner commands)
    from .commands import aliased, runnergroup_group

    commands.add(runnergroup_group)
    commands.add(aliased())
