"""``runkperf bench node100_job1_pod3k``: 100 virtual nodes, a Job of 3,000 pods re-run
throughout, 10 runners listing pods (cache and etcd) and events."""

from __future__ import annotations

from kperf_core import hookimpl

from .case_specs import COMMON_OPTIONS, total_option
from .job_cases import RepeatJobCase


class Node100Job1Pod3k(RepeatJobCase):
    """100 virtual nodes and a Job of 3000 pods (parallelism 100) re-created after each
    completion, while 10 runners send 36000 requests each at 10/s: stale LIST of pods, quorum
    LIST of pods and events (limit 1000)."""

    name = "node100_job1_pod3k"
    summary = "100 nodes, a 3k-pod Job re-run; 10 runners listing pods and events"
    pool, nodes, namespace = "node100job1pod3k", 100, "job1pod3k"
    pods, parallelism = 3000, 100
    options = (total_option(36000, "Requests per runner."), *COMMON_OPTIONS)


@hookimpl
def kperf_register_scenarios(registry):  # type: ignore[no-untyped-def]
    registry.add(Node100Job1Pod3k)
