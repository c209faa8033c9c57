"""``runkperf bench node10_job1_pod1k``: 10 virtual nodes, a Job of 1,000 pods re-run throughout,
10 runners reading pods, Jobs, nodes and namespaces (lists and single GETs)."""

from __future__ import annotations

from kperf_core import hookimpl

from .case_specs import COMMON_OPTIONS, total_option
from .job_cases import RepeatJobCase


class Node10Job1Pod1k(RepeatJobCase):
    """10 virtual nodes and a Job of 1000 pods (parallelism 100) re-created after each
    completion, while 10 runners send 1000 requests each at 10/s: stale LISTs of the Job's pods,
    Jobs, nodes and namespaces, and stale GETs of one pod, the Job, a node and the namespace."""

    name = "node10_job1_pod1k"
    summary = "10 nodes, a 1k-pod Job re-run; 10 runners reading pods, Jobs, nodes, namespaces"
    pool, nodes, namespace = "node10job1pod1k", 10, "job1pod1k"
    pods, parallelism = 1000, 100
    options = (total_option(1000, "Requests per runner."), *COMMON_OPTIONS)


@hookimpl
def kperf_register_scenarios(registry):  # type: ignore[no-untyped-def]
    registry.add(Node10Job1Pod1k)
