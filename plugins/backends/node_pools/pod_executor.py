"""Executing kperf's own runner-group pods as local processes: the embedded simulator's container
runtime, for the local control plane where no container can run.

Only a pod that is all of these is executed — anything else keeps the simulated lifecycle:

* bound to a node labelled ``kperf.io/executes-kperf-pods=true`` (a pool created for it);
* labelled ``app.kubernetes.io/name=kperf-runnergroup`` (kperf's server and runner pods);
* one container whose command starts with ``kperf`` — which is run as *this* installation's kperf
  (``python -c kperf_main``), so nothing but kperf's own CLI is ever started.

The process gets what a container of the pod would: the command and args with ``$(VAR)``
references expanded, the env (values, downward-API fields, Secret and ConfigMap keys), ConfigMap,
Secret and emptyDir volumes as files (absolute mount paths in the arguments are rewritten to the
pod's directory), a service-account token from the TokenRequest API bound to the pod, the cluster
CA and namespace (``$KPERF_SERVICE_ACCOUNT_DIR`` points at them), and the API server's address as
``KUBERNETES_SERVICE_HOST``/``_PORT``. Each pod gets its own loopback IP (127.96.0.0/11), so every
pod can listen on its declared port; the kubelet endpoint port-forwards to it.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kperf_core.virtual_nodes import EXECUTOR_NODE_LABEL, KPERF_POD_LABEL

log = logging.getLogger(__name__)

POD_IPS = ipaddress.ip_network("127.96.0.0/11")
TOKEN_SECONDS = 24 * 3600
STOP_GRACE_SECONDS = 5.0
READY_TIMEOUT = 60.0
RESTART_BACKOFF_SECONDS = 1.0
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_MAP_FIELD = re.compile(r"metadata\.(annotations|labels)\['([^']*)'\]")
_KPERF = [sys.executable, "-c", "from kperf_core.cli import kperf_main; kperf_main()"]

#: (pod, phase or None while it keeps running, exit code, restarts) → update the pod's status
StatusCallback = Callable[[Any, str | None, int, int], None]


class ExecutorClosed(Exception):
    """The simulator is stopping: no pod starts any more."""


class PodRefused(Exception):
    """The pod asks for something the executor cannot give (a volume kind, a field)."""


def executes(pod: Any, node_labels: dict[str, str]) -> bool:
    labels = pod.metadata.labels or {}
    containers = pod.spec.containers or []
    return (
        node_labels.get(EXECUTOR_NODE_LABEL[0]) == EXECUTOR_NODE_LABEL[1]
        and labels.get(KPERF_POD_LABEL[0]) == KPERF_POD_LABEL[1]
        and len(containers) == 1
        and (containers[0].command or [None])[0] == "kperf"
    )


class _Running:
    def __init__(self, pod: Any, ip: str, directory: Path) -> None:
        self.pod = pod
        self.ip = ip
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.restarts = 0
        self.mounts: list[tuple[str, Path]] = []
        self.env: dict[str, str] = {}
        self.argv: list[str] = []
        #: set once the pod was reported Running: an exit is reported only after that
        self.reported = threading.Event()


class PodExecutor:
    def __init__(self, api: Any, state_dir: Path) -> None:
        from kubernetes import client

        self.api = api
        self.core = client.CoreV1Api(api)
        self.state_dir = state_dir
        self._lock = threading.Lock()
        self._pods: dict[str, _Running] = {}  # uid → running pod
        self._closed = False
        self._ips = random.Random().randrange(1, POD_IPS.num_addresses // 2)

    # -- queries (the kubelet endpoint) ----------------------------------------------------------

    def _find(self, namespace: str, name: str) -> _Running | None:
        with self._lock:
            return next(
                (r for r in self._pods.values()
                 if r.pod.metadata.namespace == namespace and r.pod.metadata.name == name),
                None,
            )  # fmt: skip

    def pod_ip(self, namespace: str, name: str) -> str | None:
        running = self._find(namespace, name)
        return running.ip if running else None

    def log_path(self, namespace: str, name: str) -> Path | None:
        running = self._find(namespace, name)
        return running.directory / "container.log" if running else None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, pod: Any, on_status: StatusCallback) -> str:
        """Start the pod's process; returns its pod IP once the readiness probe (if any) passes.
        Raises :class:`PodRefused` when the pod cannot be executed, :class:`ExecutorClosed` once
        :meth:`stop_all` was called."""
        uid = pod.metadata.uid
        stale = self._find(pod.metadata.namespace, pod.metadata.name)
        if stale is not None:  # a pod of that name was deleted while no watch event said so
            self.stop(stale.pod.metadata.uid)
        with self._lock:
            if self._closed:
                raise ExecutorClosed
            self._ips += 1
            ip = str(POD_IPS[self._ips % (POD_IPS.num_addresses - 2) + 1])
            running = self._pods[uid] = _Running(pod, ip, self.state_dir / "pods" / uid)
        try:
            self._prepare(running)
            self._spawn(running)
        except BaseException:
            self.stop(uid)
            shutil.rmtree(running.directory, ignore_errors=True)  # stop_all may have come first
            raise
        threading.Thread(
            target=self._supervise, args=(running, on_status), name=f"pod-{uid[:8]}", daemon=True
        ).start()
        self._wait_ready(running)
        if running.stopping:
            raise ExecutorClosed
        return ip

    def reported_running(self, uid: str) -> None:
        """The pod's Running status is written: exits may be reported from now on."""
        with self._lock:
            running = self._pods.get(uid)
        if running is not None:
            running.reported.set()

    def stop(self, uid: str) -> None:
        """Stop the pod's process (SIGTERM, then SIGKILL after a grace period); remove its files."""
        with self._lock:
            running = self._pods.pop(uid, None)
            if running is None:
                return
            running.stopping = True
        self._stop([running])

    def stop_all(self) -> None:
        """Stop every pod at once and start no more: the simulator's own stop has to fit in the
        grace its pid file gives it (pods stopped one after another would not)."""
        with self._lock:
            self._closed = True
            stopping = list(self._pods.values())
            self._pods.clear()
            for running in stopping:
                running.stopping = True
        self._stop(stopping)

    @staticmethod
    def _stop(stopping: list[_Running]) -> None:
        for running in stopping:
            running.reported.set()
        terminate([running.process for running in stopping if running.process is not None])
        for running in stopping:
            shutil.rmtree(running.directory, ignore_errors=True)

    # -- the process -----------------------------------------------------------------------------

    def _prepare(self, running: _Running) -> None:
        pod, directory = running.pod, running.directory
        shutil.rmtree(directory, ignore_errors=True)
        (directory / "home").mkdir(parents=True)
        (directory / "tmp").mkdir()
        account = directory / "serviceaccount"
        account.mkdir()
        (account / "token").write_text(self._token(pod))
        (account / "ca.crt").write_text(self._ca(pod.metadata.namespace))
        (account / "namespace").write_text(pod.metadata.namespace)
        running.mounts = self._volumes(pod, directory / "volumes", account)
        container = pod.spec.containers[0]
        env = self._env(pod, container, running.ip)
        server = urlsplit(self.api.configuration.host)
        running.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HOME": str(directory / "home"),
            # a killed process's temp files go with the pod's directory, as with a container's
            "TMPDIR": str(directory / "tmp"),
            "PYTHONUNBUFFERED": "1",
            "HOSTNAME": pod.metadata.name,
            "KUBERNETES_SERVICE_HOST": server.hostname or "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(server.port or 443),
            "KPERF_SERVICE_ACCOUNT_DIR": str(account),
            **env,
        }
        words = [*(container.command or []), *(container.args or [])]
        expanded = [_expand(word, env) for word in words]
        running.argv = [*_KPERF, *(_remap(w, running.mounts) for w in expanded[1:])]

    def _spawn(self, running: _Running) -> None:
        # under the lock: a process started after stop_all() took its list would be left running
        with self._lock, (running.directory / "container.log").open("ab") as log_file:
            if running.stopping:
                raise ExecutorClosed
            running.process = subprocess.Popen(
                running.argv,
                env=running.env,
                cwd=running.directory,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole
            )
        log.info("pod %s/%s: started pid %d on %s", running.pod.metadata.namespace,
                 running.pod.metadata.name, running.process.pid, running.ip)  # fmt: skip

    def _supervise(self, running: _Running, on_status: StatusCallback) -> None:
        """Report exits as the kubelet does: restart for ``Always``, else the final phase."""
        policy = running.pod.spec.restart_policy or "Always"
        while True:
            assert running.process is not None
            code = running.process.wait()
            running.reported.wait()
            if running.stopping:
                return
            restart = policy == "Always" or (policy == "OnFailure" and code != 0)
            if not restart:
                on_status(
                    running.pod, "Succeeded" if code == 0 else "Failed", code, running.restarts
                )
                return
            running.restarts += 1
            on_status(running.pod, None, code, running.restarts)
            time.sleep(RESTART_BACKOFF_SECONDS)
            if running.stopping:
                return
            try:
                self._spawn(running)
            except ExecutorClosed:
                return

    def _wait_ready(self, running: _Running) -> None:
        probe = running.pod.spec.containers[0].readiness_probe
        port = _probe_port(probe, running.pod.spec.containers[0]) if probe else None
        if port is None:
            return
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and not running.stopping:
            try:
                socket.create_connection((running.ip, port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)

    # -- what a pod is given ---------------------------------------------------------------------

    def _token(self, pod: Any) -> str:
        """A token as the kubelet's projected volume holds: TokenRequest, bound to the pod."""
        body = {
            "spec": {
                "expirationSeconds": TOKEN_SECONDS,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": pod.metadata.name,
                    "uid": pod.metadata.uid,
                },
            }
        }
        answer = self.core.create_namespaced_service_account_token(
            pod.spec.service_account_name or "default", pod.metadata.namespace, body
        )
        return str(answer.status.token)

    def _ca(self, namespace: str) -> str:
        configmap = self.core.read_namespaced_config_map("kube-root-ca.crt", namespace)
        return str(configmap.data["ca.crt"])

    def _env(self, pod: Any, container: Any, ip: str) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in container.env or ():
            if item.value_from is None:
                env[item.name] = _expand(item.value or "", env)
                continue
            source = item.value_from
            if source.field_ref is not None:
                env[item.name] = _field(pod, source.field_ref.field_path, ip)
            elif source.secret_key_ref is not None:
                ref = source.secret_key_ref
                data = self.core.read_namespaced_secret(ref.name, pod.metadata.namespace).data
                env[item.name] = base64.b64decode(data[ref.key]).decode()
            elif source.config_map_key_ref is not None:
                ref = source.config_map_key_ref
                data = self.core.read_namespaced_config_map(ref.name, pod.metadata.namespace).data
                env[item.name] = data[ref.key]
            else:
                raise PodRefused(f"env {item.name}: only fieldRef, secretKeyRef, configMapKeyRef")
        return env

    def _volumes(self, pod: Any, root: Path, account: Path) -> list[tuple[str, Path]]:
        """Materialise the mounted volumes; (mount path, local directory), longest path first.
        ``account`` holds the service account's token, CA and namespace."""
        volumes = {v.name: v for v in pod.spec.volumes or ()}
        mounts = []
        for mount in pod.spec.containers[0].volume_mounts or ():
            volume = volumes.get(mount.name)
            if volume is None:
                continue
            if volume.projected is not None and _is_service_account_volume(volume.projected):
                # Since v1.21 the ServiceAccount admission plugin mounts the account as this
                # projected volume (kube-api-access-*), where v1.20 mounted its token Secret.
                mounts.append((mount.mount_path.rstrip("/") or "/", account))
                continue
            local = root / mount.name
            local.mkdir(parents=True, exist_ok=True)
            if volume.config_map is not None:
                data = self.core.read_namespaced_config_map(
                    volume.config_map.name, pod.metadata.namespace
                ).data
                for key, value in (data or {}).items():
                    (local / key).write_text(value)
            elif volume.secret is not None:
                data = self.core.read_namespaced_secret(
                    volume.secret.secret_name, pod.metadata.namespace
                ).data
                for key, value in (data or {}).items():
                    (local / key).write_bytes(base64.b64decode(value))
            elif volume.empty_dir is None:
                raise PodRefused(
                    f"volume {mount.name}: only configMap, secret, emptyDir and the service "
                    "account's projected volume"
                )
            mounts.append((mount.mount_path.rstrip("/") or "/", local))
        return sorted(mounts, key=lambda m: -len(m[0]))


def _is_service_account_volume(projected: Any) -> bool:
    """Whether a projected volume is the service account's: a token, the cluster CA
    (``kube-root-ca.crt``) and the namespace — what ``_prepare`` writes for every pod."""
    for source in projected.sources or ():
        if source.service_account_token is not None or source.downward_api is not None:
            continue
        if source.config_map is not None and source.config_map.name == "kube-root-ca.crt":
            continue
        return False
    return True


def _expand(word: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion; unknown references stay as written."""
    return _REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), word)


def _remap(word: str, mounts: list[tuple[str, Path]]) -> str:
    """An absolute path under a mount (alone or as ``--flag=path``) → the pod's local copy."""
    flag, eq, value = word.partition("=") if word.startswith("-") else ("", "", word)
    for mount_path, local in mounts:
        if value == mount_path or value.startswith(mount_path + "/"):
            return f"{flag}{eq}{local}{value[len(mount_path) :]}"
    return word


def _field(pod: Any, path: str, ip: str) -> str:
    fields = {
        "metadata.name": pod.metadata.name,
        "metadata.namespace": pod.metadata.namespace,
        "metadata.uid": pod.metadata.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name or "default",
        "status.podIP": ip,
        "status.hostIP": "127.0.0.1",
    }
    if path in fields:
        return str(fields[path])
    # metadata.annotations['key'] / metadata.labels['key']: an Indexed Job's pods get
    # JOB_COMPLETION_INDEX from batch.kubernetes.io/job-completion-index (the annotation on
    # v1.21-1.27, the label since v1.28's PodIndexLabel: what v1.35 uses)
    match = _MAP_FIELD.fullmatch(path)
    if match is None:
        raise PodRefused(f"fieldRef {path} is not provided")
    mapping = getattr(pod.metadata, match.group(1)) or {}
    return str(mapping.get(match.group(2), ""))


def _probe_port(probe: Any, container: Any) -> int | None:
    action = probe.tcp_socket or probe.http_get
    if action is None:
        return None
    port = action.port
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    named = {p.name: p.container_port for p in container.ports or ()}
    return named.get(port)


def terminate(processes: list[subprocess.Popen[bytes]], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM to every process's group at once, SIGKILL to the groups whose leader is still
    running after ``grace`` seconds: the whole stop takes one grace period, however many pods."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
