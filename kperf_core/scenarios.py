"""The contract a benchmark scenario implements: ``runkperf bench <name>``.

A scenario composes the other kinds — node pools, workloads, a runner group running a load profile,
sinks — into one reproducible case. It receives a :class:`~kperf_core.bench_run.BenchRun` (the
run's cluster, settings, cleanup stack and placement helpers) and returns a :class:`BenchReport`;
everything it creates is registered with the run's cleanup, so it goes on every exit path.

``runkperf bench`` generates one sub-command per registered scenario: the command-level flags
(:class:`BenchSettings`) come first, the scenario's own ``options`` after its name, as upstream::

    runkperf bench --scale 0.1 node10_job1_pod100 --total 500
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import click

from kperf_core.errors import ConfigError

if TYPE_CHECKING:
    from kperf_core.bench_run import BenchRun

#: Upstream's ``--vc-affinity`` default: where kwok's controllers may run.
DEFAULT_VC_AFFINITY = "node.kubernetes.io/instance-type=Standard_D8s_v3,m4.2xlarge,n1-standard-8"
#: Upstream's ``--rg-affinity`` default: where the runners may run.
DEFAULT_RG_AFFINITY = "node.kubernetes.io/instance-type=Standard_D16s_v3,m4.4xlarge,n1-standard-16"


@attrs.frozen(kw_only=True)
class NodeShape:
    """Upstream's "commonFlags" shape of a virtual node: ``--cpu``, ``--memory``, ``--max-pods``."""

    cpu: int = 32
    memory_gib: int = 96
    max_pods: int = 110


@attrs.frozen(kw_only=True)
class BenchSettings:
    """The command-level flags of ``runkperf bench`` (upstream's, plus ``--scale`` and backends).

    ``local`` is true when the API server listens on this machine's loopback: the runners are then
    executed by the embedded simulator as local processes (no container can run here), on a small
    node pool the run creates for them.
    """

    kubeconfig: Path | None
    context: str | None
    runner_image: str
    priority_level: str = "workload-low"
    matching_precedence: int = 1000
    vc_affinity: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    rg_affinity: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    eks: bool = False
    scale: float = 1.0
    node_pool_backend: str = "embedded"
    runner_group_backend: str = "helm"
    local: bool = True
    #: seconds to wait for nodes, the runner-group server and namespaces to go
    wait: float = 300.0

    def __attrs_post_init__(self) -> None:
        if not 0 < self.scale <= 1:
            raise ConfigError(f"--scale {self.scale}: must be in (0, 1]")

    def scaled(self, count: int, minimum: int = 1) -> int:
        """``count`` shrunk by ``--scale`` (rounded up, at least ``minimum``)."""
        return max(minimum, math.ceil(count * self.scale))


@attrs.frozen(kw_only=True)
class BenchReport:
    """Upstream's ``BenchmarkReport``: ``description``, ``loadSpec`` (the runner-group spec as
    run), ``result`` (the runner group's merged report) and ``info`` (what the case measured)."""

    description: str
    load_spec: Mapping[str, Any]
    result: Mapping[str, Any]
    info: Mapping[str, Any]

    def document(self) -> dict[str, Any]:
        """The report document the sinks receive.

        It is kperf's runner-group report (``perSpecResults``, ``aggregated``, ``kperf``,
        ``runnerGroups`` — so every sink, ``--slo`` and ``kperf report`` read it) with upstream's
        keys added: ``result`` is upstream's ``RunnerGroupsReport``, the aggregate.
        """
        return {
            **self.result,
            "description": self.description,
            "loadSpec": dict(self.load_spec),
            "result": self.result.get("aggregated", {}),
            "info": dict(self.info),
        }


class Scenario(abc.ABC):
    """Base class of ``node10_job1_pod100`` and every other benchmark case.

    ``options`` are click parameters of the scenario's own ``bench`` sub-command, so a case's
    flags appear in ``runkperf bench NAME --help`` without touching the core. Their values reach
    :meth:`run` as ``options`` (click's parameter names).
    """

    #: The name users type: ``runkperf bench node10_job1_pod100``.
    name: ClassVar[str]
    #: One line shown in ``runkperf bench --help``.
    summary: ClassVar[str]
    #: Extra command-line options of this scenario.
    options: ClassVar[tuple[click.Parameter, ...]] = ()

    def check(self, settings: BenchSettings, options: Mapping[str, Any]) -> list[str]:
        """Problems with the case's options, found before anything is created (one line each)."""
        return []

    @abc.abstractmethod
    def run(self, bench: BenchRun, options: Mapping[str, Any]) -> BenchReport:
        """Set up, run the load, and return the report. Register everything created with
        ``bench`` (its helpers do), so that it is removed on every path, failures included."""
