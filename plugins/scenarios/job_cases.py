"""What the repeated-Job cases share (``node10_job1_pod100``, ``node10_job1_pod1k``,
``node100_job1_pod3k``): a pool of virtual nodes, one Job re-run for the whole measurement, and
a runner group with the case's profile. Each case is a subclass naming its sizes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from kperf_core.scenarios import BenchReport, BenchSettings, Scenario

from .case_specs import load_spec, node_shape, runner_summary, tweak_spec
from .job_workload import JobChurn, repeat_job, upstream_job
from .read_targets import fit_read_targets

if TYPE_CHECKING:
    from kperf_core.bench_run import BenchRun

#: Upstream's pause between a Job's deletion and the next one.
JOB_INTERVAL_SECONDS = 5.0


class RepeatJobCase(Scenario):
    """A pool of ``nodes`` virtual nodes and a Job of ``pods`` pods (``parallelism`` at a time)
    in ``namespace``, re-created 5 s after each completion while the runners measure."""

    pool: ClassVar[str]
    nodes: ClassVar[int]
    namespace: ClassVar[str]
    pods: ClassVar[int]
    parallelism: ClassVar[int]

    def sizes(self, settings: BenchSettings) -> dict[str, int]:
        """Nodes, pods and parallelism at ``--scale``."""
        return {
            "nodes": settings.scaled(self.nodes),
            "pods": settings.scaled(self.pods),
            "parallelism": settings.scaled(self.parallelism),
        }

    def run(self, bench: BenchRun, options: Mapping[str, Any]) -> BenchReport:
        sizes = self.sizes(bench.settings)
        bench.node_pool(self.pool, sizes["nodes"], node_shape(options))
        namespace = bench.namespace(self.namespace)
        churn = JobChurn()
        job = upstream_job("batchjobs", sizes["pods"], sizes["parallelism"], bench.labels)
        bench.in_background(
            "repeat-job", repeat_job(bench.api, namespace, job, JOB_INTERVAL_SECONDS, churn)
        )
        bench.show(churn.describe)
        spec = tweak_spec(
            load_spec(self.name),
            bench.settings,
            total=options["total"],
            content_type=options["content_type"],
        )
        retargeted = fit_read_targets(bench, spec, self.pool, sizes["nodes"], namespace)
        result = bench.run_runner_group(spec)
        description = (
            f"Environment: {sizes['nodes']} virtual nodes ({bench.settings.node_pool_backend}) "
            f"of {options['cpu']} cpu, {options['memory']} GiB, {options['max_pods']} pods.\n"
            f"Workload: a Job of {sizes['pods']} pods (parallelism {sizes['parallelism']}) in "
            f"namespace {namespace}, deleted and created again "
            f"{JOB_INTERVAL_SECONDS:g} s after each completion.\n"
            f"Runners: {runner_summary(spec)}."
        )
        info: dict[str, Any] = {
            "nodes": sizes["nodes"],
            "jobPods": sizes["pods"],
            "jobParallelism": sizes["parallelism"],
            **churn.as_info(),
        }
        if retargeted:
            info["readTargets"] = retargeted
        return BenchReport(description=description, load_spec=spec, result=result, info=info)
