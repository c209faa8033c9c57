"""Upstream's ``RepeatJobWithPod``: a Job of fake pods on the virtual nodes, run to completion,
deleted, and created again — pod churn for the scheduler, the Job controller and every informer.

kperf's version waits on the Job's own ``Complete``/``Failed`` condition (upstream compared
counts), stops within a second of the run's end, and counts what it did for the report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from kperf_core.virtual_nodes import job_on_virtual_nodes

#: Upstream sleeps this long before each creation (and ``interval`` after each deletion).
SETTLE_SECONDS = 5.0
#: Upstream's ``kubectl wait --timeout=900s`` for one Job.
JOB_TIMEOUT_SECONDS = 900.0
POLL_SECONDS = 0.5


@attrs.define
class JobChurn:
    """What the workload did, for the report's ``info``."""

    created: int = 0
    completed: int = 0
    failed: int = 0
    pods_succeeded: int = 0
    #: the current Job's pods: wanted, active, succeeded (for the progress line)
    job_pods: int = 0
    active: int = 0
    succeeded: int = 0

    def describe(self) -> str:
        if not self.created:
            return "Job: not created yet"
        return (
            f"Job run {self.created}: {self.active} pods running, "
            f"{self.succeeded}/{self.job_pods} succeeded"
        )

    def as_info(self) -> dict[str, int]:
        # a Job still running when the measurement ended counts the pods it finished so far
        running = self.created > self.completed + self.failed
        return {
            "jobsCreated": self.created,
            "jobsCompleted": self.completed,
            "jobsFailed": self.failed,
            "podsSucceeded": self.pods_succeeded + (self.succeeded if running else 0),
        }


def upstream_job(
    name: str,
    pods: int,
    parallelism: int,
    run_labels: Mapping[str, str],
    job_labels: Mapping[str, str] | None = None,
    pod_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Upstream's Job manifest: container ``fake-container``, pods labelled ``app=fake-pod`` on
    virtual nodes; the run's labels on both."""
    job = job_on_virtual_nodes(name, pods, parallelism)
    job["metadata"]["labels"] = {**run_labels, **(job_labels or {})}
    template = job["spec"]["template"]
    template["metadata"] = {"labels": {**run_labels, "app": "fake-pod", **(pod_labels or {})}}
    template["spec"]["containers"][0]["name"] = "fake-container"
    return job


def succeeded_pods(api: Any, namespace: str) -> int:
    """Pods of ``namespace`` that ran to completion."""
    from kubernetes import client

    pods = client.CoreV1Api(api).list_namespaced_pod(
        namespace, field_selector="status.phase=Succeeded"
    )
    return len(pods.items)


def repeat_job(
    api: Any, namespace: str, job: dict[str, Any], interval: float, churn: JobChurn
) -> Callable[[threading.Event], None]:
    """The loop to run in the background until ``stop`` is set."""

    def work(stop: threading.Event) -> None:
        from kubernetes import client

        from kperf_core.cluster_api import ignore_missing

        batch = client.BatchV1Api(api)
        name = job["metadata"]["name"]
        churn.job_pods = job["spec"]["completions"]
        while not stop.wait(SETTLE_SECONDS):
            batch.create_namespaced_job(namespace, job)
            churn.created += 1
            churn.active = churn.succeeded = 0
            try:
                _wait_finished(batch, namespace, name, stop, churn)
            finally:
                # Background propagation: the garbage collector removes the pods.
                ignore_missing(
                    batch.delete_namespaced_job, name, namespace, propagation_policy="Background"
                )
                _wait_gone(batch, namespace, name)
            if stop.wait(interval):
                return

    return work


def _wait_finished(
    batch: Any, namespace: str, name: str, stop: threading.Event, churn: JobChurn
) -> None:
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while not stop.wait(POLL_SECONDS) and time.monotonic() < deadline:
        status = batch.read_namespaced_job_status(name, namespace).status
        churn.active, churn.succeeded = status.active or 0, status.succeeded or 0
        conditions = {c.type for c in status.conditions or () if c.status == "True"}
        if "Complete" in conditions or "Failed" in conditions:
            churn.completed += "Complete" in conditions
            churn.failed += "Failed" in conditions
            churn.pods_succeeded += status.succeeded or 0
            return


def _wait_gone(batch: Any, namespace: str, name: str) -> None:
    from kperf_core.cluster_api import ignore_missing

    deadline = time.monotonic() + 60
    while ignore_missing(batch.read_namespaced_job, name, namespace) is not None:
        if time.monotonic() > deadline:
            return
        time.sleep(POLL_SECONDS)
