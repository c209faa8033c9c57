"""The embedded node simulator: what kwok's controllers do, in one process, for clusters where no
container can run (the local control plane).

Stages as upstream's kwok Stage objects define them:

* **node-initialize** — a virtual node of an ``embedded`` pool whose Ready is not True gets its
  conditions (Ready, no pressure), addresses and kubelet endpoint;
* **node liveness** — a Lease per node in ``kube-node-lease`` (40 s, owned by the node), renewed
  every 10 s, so the node lifecycle controller keeps the nodes Ready;
* **pod-ready** — a pod bound to a virtual node goes Pending → Running (pod IP, host IP, start
  time, conditions, running container statuses) after ``delay`` + up to ``jitter`` seconds;
* **pod-complete** — a Running pod owned by a Job goes Succeeded (containers terminated,
  Completed, exit 0) after another delay; other pods run until deleted;
* **pod-delete** — a pod with a deletion timestamp and no finalizers is deleted for good.

With an executor (:mod:`.pod_executor`), kperf's own runner-group pods on nodes made for it are
not simulated but run as local processes: Running once started (and ready), then Succeeded or
Failed with the process's exit code, restarted in place under ``restartPolicy: Always``.

Nodes and pods are followed by watches (resumed from their resourceVersion, relisted after 410),
so the simulator adds a few requests per pod and one lease update per node every 10 s.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from kperf_core.virtual_nodes import VIRTUAL_NODE_LABEL

from .nodes import BACKEND_LABEL, LEASE_NAMESPACE
from .pod_executor import ExecutorClosed, PodExecutor, PodRefused, executes

log = logging.getLogger(__name__)

LEASE_SECONDS = 40
RENEW_EVERY = 10.0
#: The simulator ends by itself when it has had no node to serve, or no answer from the
#: apiserver, for this long: a pool deleted behind its back, a control plane taken down.
IDLE_EXIT_SECONDS = 60.0
#: Pod IPs come from here, node IPs from the next /16.
POD_NETWORK = ipaddress.ip_network("10.128.0.0/10")
NODE_NETWORK = ipaddress.ip_network("10.64.0.0/16")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Simulator:
    """Runs until :meth:`stop`; ``api`` is a kubernetes ``ApiClient``."""

    def __init__(
        self,
        api: Any,
        *,
        backend: str = "embedded",
        delay: float = 1.0,
        jitter: float = 4.0,
        workers: int = 4,
        seed: int | None = None,
        kubelet_port: int | None = None,
        executor: PodExecutor | None = None,
    ) -> None:
        """``kubelet_port``: where this machine serves the kubelet log endpoint
        (:mod:`.kubelet_logs`); the nodes then have the address 127.0.0.1 and that port.
        ``executor``: runs kperf's own pods as processes (see :func:`.pod_executor.executes`)."""
        from kubernetes import client

        self.core = client.CoreV1Api(api)
        self.leases = client.CoordinationV1Api(api)
        self.selector = f"{VIRTUAL_NODE_LABEL[0]}={VIRTUAL_NODE_LABEL[1]},{BACKEND_LABEL}={backend}"
        self.delay = delay
        self.jitter = jitter
        self.rng = random.Random(seed)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        #: node name → its IP
        self._nodes: dict[str, str] = {}
        #: node name → its labels (which nodes execute kperf's pods)
        self._node_labels: dict[str, dict[str, str]] = {}
        self.executor = executor
        #: pod uid → the stage scheduled for it (so a watch event does not schedule it twice)
        self._scheduled: dict[str, str] = {}
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._wake = threading.Condition(self._lock)
        self._pod_ips = itertools.count(1)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stage")
        self.kubelet_port = kubelet_port

    # -- running --------------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until :meth:`stop` is called (from a signal handler or another thread)."""
        threads = [
            threading.Thread(target=self._guard(self._follow_nodes), name="nodes", daemon=True),
            threading.Thread(target=self._guard(self._follow_pods), name="pods", daemon=True),
            threading.Thread(target=self._guard(self._renew_leases), name="leases", daemon=True),
            threading.Thread(target=self._guard(self._dispatch), name="stages", daemon=True),
            threading.Thread(target=self._watchdog, name="watchdog", daemon=True),
        ]
        for thread in threads:
            thread.start()
        self._stop.wait()
        with self._wake:
            self._wake.notify_all()
        # the pods first: a stage waiting for a pod's readiness ends with it, so the stage
        # threads are done well within the grace `kperf vc nodepool delete` gives this process
        if self.executor is not None:
            self.executor.stop_all()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def stop(self) -> None:
        self._stop.set()

    def _watchdog(self) -> None:
        last_needed = time.monotonic()
        while not self._stop.wait(5.0):
            try:
                needed = bool(self.core.list_node(label_selector=self.selector, limit=1).items)
            except Exception:  # unreachable: counts as not needed
                needed = False
            if needed:
                last_needed = time.monotonic()
            elif time.monotonic() - last_needed > IDLE_EXIT_SECONDS:
                log.info(
                    "no node to serve (or no apiserver) for %.0f s: exiting", IDLE_EXIT_SECONDS
                )
                self.stop()

    def _guard(self, loop: Callable[[], None]) -> Callable[[], None]:
        """Keep a loop alive across API errors (a restarting apiserver, a dropped watch)."""

        def run() -> None:
            while not self._stop.is_set():
                try:
                    loop()
                except Exception as exc:  # logged, retried: the simulator must outlive hiccups
                    log.warning("%s: %s; retrying", loop.__name__, exc)
                    self._stop.wait(1.0)

        return run

    def _watch(
        self, list_call: Callable[..., Any], handle: Callable[[str, Any], None], **kw: Any
    ) -> None:
        """List, then watch from the list's resourceVersion; return on 410 (the caller relists)."""
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        listed = list_call(**kw)
        for item in listed.items:
            handle("ADDED", item)
        version = listed.metadata.resource_version
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    list_call, resource_version=version, timeout_seconds=30, **kw
                ):
                    if self._stop.is_set():
                        stream.stop()
                        return
                    obj = event["object"]
                    version = obj.metadata.resource_version
                    handle(event["type"], obj)
            except ApiException as exc:
                if exc.status == 410:
                    return
                raise

    # -- nodes ----------------------------------------------------------------------------------

    def _follow_nodes(self) -> None:
        self._watch(self.core.list_node, self._on_node, label_selector=self.selector)

    def _on_node(self, kind: str, node: Any) -> None:
        name = node.metadata.name
        if kind == "DELETED":
            with self._lock:
                self._nodes.pop(name, None)
                self._node_labels.pop(name, None)
            return
        with self._lock:
            self._node_labels[name] = dict(node.metadata.labels or {})
            new = name not in self._nodes
            if new:
                self._nodes[name] = (
                    "127.0.0.1" if self.kubelet_port else str(NODE_NETWORK[len(self._nodes) + 1])
                )
            ip = self._nodes[name]
        conditions = (node.status and node.status.conditions) or []
        # At first sight too: a restarted simulator serves logs on another port.
        if new or not any(c.type == "Ready" and c.status == "True" for c in conditions):
            self._initialize_node(name, ip)
        if new:
            self._renew_lease(name, node.metadata.uid)

    def _initialize_node(self, name: str, ip: str) -> None:
        now = _now()

        def condition(kind: str, status: str, reason: str) -> dict[str, str]:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": f"kperf embedded simulator: {reason}",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }

        status = {
            "conditions": [
                condition("Ready", "True", "KubeletReady"),
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID"),
                condition("NetworkUnavailable", "False", "RouteCreated"),
            ],
            # No Hostname address: the apiserver prefers it and could not resolve it.
            "addresses": [{"type": "InternalIP", "address": ip}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port or 10250}},
            "phase": "Running",
        }
        self.core.patch_node_status(name, {"status": status})

    def _renew_leases(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            with self._lock:
                names = list(self._nodes)
            for name in names:
                self._renew_lease(name, None)

    def _renew_lease(self, name: str, uid: str | None) -> None:
        from kubernetes.client.exceptions import ApiException

        spec = {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": _micro_now(),
        }
        try:
            self.leases.patch_namespaced_lease(name, LEASE_NAMESPACE, {"spec": spec})
        except ApiException as exc:
            if exc.status != 404:
                raise
            metadata: dict[str, Any] = {"name": name}
            if uid:  # owned by its node, as the kubelet's: deleting the node deletes the lease
                metadata["ownerReferences"] = [
                    {"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}
                ]
            self.leases.create_namespaced_lease(
                LEASE_NAMESPACE, {"metadata": metadata, "spec": spec}
            )

    # -- pods -----------------------------------------------------------------------------------

    def _follow_pods(self) -> None:
        # Only bound pods; the ones on other nodes are filtered here (a field selector cannot
        # name a set of nodes).
        self._watch(
            self.core.list_pod_for_all_namespaces,
            self._on_pod,
            field_selector="spec.nodeName!=",
        )

    def _on_pod(self, kind: str, pod: Any) -> None:
        uid = pod.metadata.uid
        if kind == "DELETED":
            with self._lock:
                self._scheduled.pop(uid, None)
            if self.executor is not None:
                self.executor.stop(uid)
            return
        with self._lock:
            node_ip = self._nodes.get(pod.spec.node_name)
            labels = self._node_labels.get(pod.spec.node_name, {})
        if node_ip is None:
            return
        executed = self.executor is not None and executes(pod, labels)
        phase = pod.status.phase if pod.status else None
        if pod.metadata.deletion_timestamp is not None:
            if not pod.metadata.finalizers:
                self._schedule(uid, "delete", 1.0, lambda: self._delete(pod))
        elif phase == "Pending" and executed:
            self._schedule(uid, "ready", 0.0, lambda: self._execute(pod, node_ip))
        elif phase == "Pending":
            self._schedule(uid, "ready", self._pause(), lambda: self._ready(pod, node_ip))
        elif phase == "Running" and _owned_by_job(pod) and not executed:
            self._schedule(uid, "complete", self._pause(), lambda: self._complete(pod))

    def _pause(self) -> float:
        return self.delay + self.rng.uniform(0, self.jitter)

    def _schedule(self, uid: str, stage: str, after: float, action: Callable[[], None]) -> None:
        with self._wake:
            if self._scheduled.get(uid) == stage:
                return
            self._scheduled[uid] = stage
            heapq.heappush(self._queue, (time.monotonic() + after, next(self._seq), action))
            self._wake.notify()

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                while not self._stop.is_set() and (
                    not self._queue or self._queue[0][0] > time.monotonic()
                ):
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._wake.wait(timeout)
                if self._stop.is_set():
                    return
                _, _, action = heapq.heappop(self._queue)
            self._pool.submit(self._guarded_stage, action)

    @staticmethod
    def _guarded_stage(action: Callable[[], None]) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            action()
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone meanwhile, or changed: the watch says so
                log.warning("stage failed: %s", exc)

    def _execute(self, pod: Any, node_ip: str) -> None:
        from kubernetes.client.exceptions import ApiException

        assert self.executor is not None
        try:
            ip = self.executor.start(pod, self._exited)
        except ExecutorClosed:
            return  # the simulator is stopping
        except (PodRefused, ApiException, KeyError, OSError) as exc:  # a missing Secret, …
            log.warning("pod %s/%s cannot be executed: %s", pod.metadata.namespace,
                        pod.metadata.name, exc)  # fmt: skip
            self._complete(pod, exit_code=128, message=str(exc))
            return
        self._ready(pod, node_ip, ip)
        self.executor.reported_running(pod.metadata.uid)

    def _exited(self, pod: Any, phase: str | None, code: int, restarts: int) -> None:
        """An executed pod's process ended: its final phase, or (restarted) its restart count."""
        from kubernetes.client.exceptions import ApiException

        try:
            if phase is not None:
                self._complete(pod, exit_code=code)
                return
            status = {"containerStatuses": [
                {"name": c.name, "image": c.image, "imageID": "", "ready": True, "started": True,
                 "restartCount": restarts, "state": {"running": {"startedAt": _now()}},
                 "lastState": {"terminated": {"exitCode": code, "reason": "Error" if code else
                                              "Completed", "finishedAt": _now()}}}
                for c in pod.spec.containers
            ]}  # fmt: skip
            self.core.patch_namespaced_pod_status(
                pod.metadata.name, pod.metadata.namespace, {"status": status}
            )
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile
                log.warning("pod %s: status update failed: %s", pod.metadata.name, exc)

    def _ready(self, pod: Any, node_ip: str, ip: str | None = None) -> None:
        now = _now()
        ip = ip or str(POD_NETWORK[next(self._pod_ips)])
        conditions = [
            {"type": kind, "status": "True", "lastTransitionTime": now}
            for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
        ]
        statuses = [
            {
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }
            for c in pod.spec.containers
        ]
        status = {
            "phase": "Running",
            "hostIP": node_ip,
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": now,
            "conditions": conditions,
            "containerStatuses": statuses,
        }
        self.core.patch_namespaced_pod_status(
            pod.metadata.name, pod.metadata.namespace, {"status": status}
        )

    def _complete(self, pod: Any, exit_code: int = 0, message: str = "") -> None:
        """Succeeded (exit 0) or Failed: containers terminated with ``exit_code``."""
        now = _now()
        started = {s.name: s.state.running.started_at for s in pod.status.container_statuses or ()
                   if s.state and s.state.running}  # fmt: skip
        statuses = [
            {
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": "Error" if exit_code else "Completed",
                        "message": message,
                        "startedAt": started[c.name].strftime("%Y-%m-%dT%H:%M:%SZ")
                        if c.name in started
                        else now,
                        "finishedAt": now,
                    }
                },
            }
            for c in pod.spec.containers
        ]
        conditions = [
            {"type": kind, "status": "False", "reason": "PodCompleted", "lastTransitionTime": now}
            for kind in ("Ready", "ContainersReady")
        ]
        status = {
            "phase": "Failed" if exit_code else "Succeeded",
            "conditions": conditions,
            "containerStatuses": statuses,
        }
        self.core.patch_namespaced_pod_status(
            pod.metadata.name, pod.metadata.namespace, {"status": status}
        )

    def _delete(self, pod: Any) -> None:
        if self.executor is not None:  # its process ends before the pod object goes
            self.executor.stop(pod.metadata.uid)
        self.core.delete_namespaced_pod(
            pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0
        )


def _owned_by_job(pod: Any) -> bool:
    return any(ref.kind == "Job" for ref in pod.metadata.owner_references or ())
