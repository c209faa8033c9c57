"""The contract a benchmark scenario implements (``runkperf bench <name>``, warmup, data).

A scenario composes the other kinds — node pools, workloads, a runner group running a load profile,
sinks — into one reproducible case, and owns the cleanup of everything it creates.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import click


class Scenario(abc.ABC):
    """Base class of ``node10_job1_pod100`` and every other benchmark case.

    ``options`` are click parameters added to the scenario's own ``bench`` sub-command, so a
    scenario's flags appear in ``runkperf bench NAME --help`` without touching the core.
    """

    #: The name users type: ``runkperf bench node10_job1_pod100``.
    name: ClassVar[str]
    #: One line shown in ``runkperf bench --help``.
    summary: ClassVar[str]
    #: Extra command-line options of this scenario.
    options: ClassVar[tuple[click.Parameter, ...]] = ()

    @abc.abstractmethod
    def run(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Set up, run the load, tear down; return the report (``description``, ``loadSpec``,
        ``result``, ``info``). Must remove what it created on every path, failures included."""
