"""``runkperf bench node10_job1_pod100``: 10 virtual nodes, a Job of 100 pods re-run throughout,
one runner listing pods (from the cache and from etcd) and events.

Upstream's description said 100 nodes and 3,000 pods and its ``--total`` help "10 runners, rate
1"; the profile has 1 runner at rate 10, which this report describes as run.
"""

from __future__ import annotations

from kperf_core import hookimpl

from .case_specs import COMMON_OPTIONS, total_option
from .job_cases import RepeatJobCase


class Node10Job1Pod100(RepeatJobCase):
    """10 virtual nodes and a Job of 100 pods (parallelism 10) re-created after each completion,
    while 1 runner sends 1000 requests at 10/s: stale LIST of pods, quorum LIST of pods and
    events (limit 1000)."""

    name = "node10_job1_pod100"
    summary = "10 nodes, a 100-pod Job re-run; 1 runner listing pods and events"
    pool, nodes, namespace = "node10job1pod100", 10, "job1pod100"
    pods, parallelism = 100, 10
    options = (total_option(1000, "Requests per runner."), *COMMON_OPTIONS)


@hookimpl
def kperf_register_scenarios(registry):  # type: ignore[no-untyped-def]
    registry.add(Node10Job1Pod100)
