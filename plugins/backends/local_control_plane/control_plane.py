"""etcd + kube-apiserver + kube-controller-manager + kube-scheduler as local processes on loopback.

Every process gets a pid file the moment it starts, recorded with its kernel start time, so
``down`` (or the next ``up``) can stop exactly the processes a previous run left behind — after a
crash too — without ever signalling a recycled pid.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import shutil
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from kperf_core.backends import ControlPlane, ControlPlaneStatus
from kperf_core.errors import BackendError
from kperf_core.processes import PidFile

from .binaries import binary_version, find_binaries, parse_version
from .pki import ClusterCredentials, create_credentials

log = logging.getLogger(__name__)

#: Start order; ``down`` stops in reverse.
COMPONENT_ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
#: What ``down`` removes from the state directory (nothing else there is touched).
OWNED_ENTRIES = ("etcd-data", "pki", "logs", "run", "kubeconfig", "state.json")
CONTEXT = "kperf-local"
TOKEN_CONTEXT = "kperf-local-token"
#: Client rate limits of controller-manager and scheduler. Their defaults (20/30 and 50/100)
#: cap pod churn at ~20 pods/s, far below what the apiserver serves; managed control planes raise
#: them too. A benchmark plane must not be throttled by its own controllers.
CONTROLLER_API_QPS = 500
CONTROLLER_API_BURST = 1000
#: The minor release that removed the insecure ports (apiserver --insecure-port, controller-manager
#: and scheduler --port).
INSECURE_PORTS_REMOVED = 24
#: The loopback ports one plane listens on, chosen free at each start.
PORTS = ("etcd-client", "etcd-peer", "apiserver", "controller-manager", "scheduler")


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalControlPlane(ControlPlane):
    """A real control plane in ``state_dir``, started by ``up`` and removed by ``down``.

    :param bin_dir: where to look first for the binaries (see ``binaries.find_binaries``).
    :param controllers: also run controller-manager and scheduler (Jobs, service-account tokens,
        pod binding). Without them only etcd and the apiserver run.
    :param timeout: seconds each component may take to become ready.
    :param kube_version: the Kubernetes version to run (its ``kperf local provision`` cache is
        searched first); None means the newest one provisioned. The binaries found must report it.
    """

    name: ClassVar[str] = "local"

    def __init__(
        self,
        state_dir: Path,
        *,
        bin_dir: Path | None = None,
        controllers: bool = True,
        timeout: float = 120.0,
        kube_version: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(Path(state_dir).absolute(), **options)
        if kube_version is not None:
            parse_version(kube_version)  # a malformed version fails here, before anything runs
        self.kube_version = kube_version
        self.bin_dir = bin_dir
        self.controllers = controllers
        self.timeout = timeout

    # -- paths --------------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def _run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def _log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    def _components(self) -> tuple[str, ...]:
        return COMPONENT_ORDER if self.controllers else COMPONENT_ORDER[:2]

    # -- lifecycle ------------------------------------------------------------------------------

    def up(self) -> ControlPlaneStatus:
        current = self.status()
        if current.running:
            log.info("control plane in %s is already running", self.state_dir)
            return current
        if any(self._pid_files()) or self._state_file.exists():
            log.warning("removing leftovers of a previous control plane in %s", self.state_dir)
            self.down()
        binaries = find_binaries(self.bin_dir, self.kube_version)
        version = binary_version(binaries["kube-apiserver"])
        if self.kube_version is not None and version != self.kube_version:
            raise BackendError(
                f"{binaries['kube-apiserver']} is Kubernetes {version}, not {self.kube_version}; "
                f"run `kperf local provision --kube-version {self.kube_version}`"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for d in (self._run_dir, self._log_dir):
            d.mkdir(parents=True, exist_ok=True)
        try:
            self._start(binaries, version)
        except BaseException:
            self.down()  # a half-started plane leaves nothing behind, Ctrl-C included
            raise
        return self.status()

    def _start(self, binaries: dict[str, Path], version: str) -> None:
        # Flags the old releases need and the current ones reject.
        legacy = parse_version(version)[0] < INSECURE_PORTS_REMOVED
        creds = create_credentials(self.state_dir / "pki")
        ports = {component: free_loopback_port() for component in PORTS}
        server = f"https://127.0.0.1:{ports['apiserver']}"
        etcd_url = self._start_etcd(binaries["etcd"], ports)
        self._start_apiserver(binaries["kube-apiserver"], etcd_url, ports, creds, legacy)
        self._wait_ready("kube-apiserver", lambda: self._apiserver_ready(server, creds))
        self._write_kubeconfig(server, creds)
        self._write_state(server, ports, version)
        if self.controllers:
            self._start_controllers(binaries, ports, creds, legacy)
            self._wait_ready(
                "kube-controller-manager",
                lambda: (
                    _https_healthz(ports["controller-manager"])
                    and self._default_service_account_exists(server, creds)
                ),
            )
            self._wait_ready("kube-scheduler", lambda: _https_healthz(ports["scheduler"]))

    def _start_etcd(self, binary: Path, ports: dict[str, int]) -> str:
        """Start etcd, wait until healthy; its client URL."""
        etcd_url = f"http://127.0.0.1:{ports['etcd-client']}"
        peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
        self._spawn(
            "etcd",
            [
                str(binary),
                "--name=kperf-local",
                f"--data-dir={self.state_dir / 'etcd-data'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=kperf-local={peer_url}",
            ],
        )
        self._wait_ready("etcd", lambda: _http_get_ok(etcd_url + "/health"))
        return etcd_url

    def _start_apiserver(
        self,
        binary: Path,
        etcd_url: str,
        ports: dict[str, int],
        creds: ClusterCredentials,
        legacy: bool,
    ) -> None:
        self._spawn(
            "kube-apiserver",
            [
                str(binary),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['apiserver']}",
                *(["--insecure-port=0"] if legacy else []),
                "--advertise-address=127.0.0.1",
                # A loopback endpoint is "invalid" for the kubernetes Service; without this the
                # apiserver logs an error every 10 s.
                "--endpoint-reconciler-type=none",
                f"--cert-dir={self.state_dir / 'pki' / 'apiserver-generated'}",
                f"--tls-cert-file={creds.serving_cert}",
                f"--tls-private-key-file={creds.serving_key}",
                f"--client-ca-file={creds.ca_cert}",
                f"--token-auth-file={creds.token_file}",
                f"--service-account-key-file={creds.service_account_pub}",
                f"--service-account-signing-key-file={creds.service_account_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.96.0.0/24",
                "--allow-privileged=true",
            ],
        )

    def _start_controllers(
        self,
        binaries: dict[str, Path],
        ports: dict[str, int],
        creds: ClusterCredentials,
        legacy: bool,
    ) -> None:
        """Start controller-manager and scheduler (readiness is the caller's to wait for)."""
        self._spawn(
            "kube-controller-manager",
            [
                *self._controller_args(binaries, "kube-controller-manager", ports, legacy),
                # Without the token controller Jobs never get pods ("No API token found for
                # service account default").
                f"--service-account-private-key-file={creds.service_account_key}",
                f"--root-ca-file={creds.ca_cert}",
                "--use-service-account-credentials=false",
            ],
        )
        self._spawn(
            "kube-scheduler", self._controller_args(binaries, "kube-scheduler", ports, legacy)
        )

    def _controller_args(
        self, binaries: dict[str, Path], component: str, ports: dict[str, int], legacy: bool
    ) -> list[str]:
        """What controller-manager and scheduler share: the admin kubeconfig, no leader election,
        raised client limits, a loopback-only secure port."""
        kubeconfig = str(self.kubeconfig)
        short = component.removeprefix("kube-")  # as in PORTS
        return [
            str(binaries[component]),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            # otherwise v1.20 serves plain healthz on [::]:10251 / 10252
            *(["--port=0"] if legacy else []),
            f"--kube-api-qps={CONTROLLER_API_QPS}",
            f"--kube-api-burst={CONTROLLER_API_BURST}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports[short]}",
            f"--cert-dir={self.state_dir / 'pki' / f'{short}-generated'}",
        ]

    def down(self) -> None:
        for component in reversed(COMPONENT_ORDER):
            self._stop(component)
        for entry in OWNED_ENTRIES:
            path = self.state_dir / entry
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        try:
            self.state_dir.rmdir()  # only if nothing of the user's is in it
        except OSError:
            pass

    def status(self) -> ControlPlaneStatus:
        state = self._read_state()
        components: dict[str, dict[str, Any]] = {}
        for component in self._components():
            pid = self._live_pid(component)
            components[component] = {
                "pid": pid,
                "alive": pid is not None,
                "log": str(self._log_dir / f"{component}.log"),
            }
        server = state.get("server") if state else None
        running = (
            server is not None
            and all(c["alive"] for c in components.values())
            and self._apiserver_ready(server, None)
        )
        return ControlPlaneStatus(
            running=running,
            kubeconfig=self.kubeconfig if self.kubeconfig.exists() else None,
            server=server,
            components=components,
            version=self._server_version(server) if running and server else None,
            settings=_settings(state),
        )

    # -- processes ------------------------------------------------------------------------------

    def _pid_file(self, component: str) -> Path:
        return self._run_dir / f"{component}.pid"

    def _pid_files(self) -> list[Path]:
        return sorted(self._run_dir.glob("*.pid")) if self._run_dir.is_dir() else []

    def _spawn(self, component: str, argv: list[str]) -> None:
        log.info("starting %s", component)
        PidFile(self._pid_file(component)).spawn(argv, self._log_dir / f"{component}.log")

    def _live_pid(self, component: str) -> int | None:
        return PidFile(self._pid_file(component)).live_pid()

    def _stop(self, component: str, grace: float = 10.0) -> None:
        log.info("stopping %s", component)
        PidFile(self._pid_file(component)).stop(grace)

    def _wait_ready(self, component: str, probe: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._live_pid(component) is None:
                raise BackendError(
                    f"{component} exited during start-up; last log lines:\n"
                    + self._log_tail(component)
                )
            if probe():
                log.info("%s is ready", component)
                return
            time.sleep(0.2)
        raise BackendError(
            f"{component} was not ready within {self.timeout:.0f} s; last log lines:\n"
            + self._log_tail(component)
        )

    def _log_tail(self, component: str, lines: int = 15) -> str:
        try:
            text = (self._log_dir / f"{component}.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- API server probes ----------------------------------------------------------------------

    def _apiserver_ready(self, server: str, creds: ClusterCredentials | None) -> bool:
        token, ca = self._token_and_ca(creds)
        if token is None or ca is None:
            return False
        status, _ = _https_get(server, "/readyz", ca, token)
        return status == 200

    def _server_version(self, server: str) -> str | None:
        token, ca = self._token_and_ca(None)
        if token is None or ca is None:
            return None
        status, body = _https_get(server, "/version", ca, token)
        if status != 200:
            return None
        version: str | None = json.loads(body).get("gitVersion")
        return version

    def _default_service_account_exists(self, server: str, creds: ClusterCredentials) -> bool:
        status, _ = _https_get(
            server,
            "/api/v1/namespaces/default/serviceaccounts/default",
            creds.ca_cert,
            creds.admin_token,
        )
        return status == 200

    def _token_and_ca(self, creds: ClusterCredentials | None) -> tuple[str | None, Path | None]:
        if creds is not None:
            return creds.admin_token, creds.ca_cert
        state = self._read_state()
        ca = self.state_dir / "pki" / "ca.crt"
        return (state or {}).get("token"), ca if ca.exists() else None

    # -- files ----------------------------------------------------------------------------------

    def _write_state(self, server: str, ports: dict[str, int], version: str) -> None:
        token = (self.state_dir / "pki" / "tokens.csv").read_text().split(",", 1)[0]
        state = {
            "server": server,
            "ports": ports,
            "token": token,
            "version": version,
            "controllers": {
                "kube-api-qps": CONTROLLER_API_QPS,
                "kube-api-burst": CONTROLLER_API_BURST,
            }
            if self.controllers
            else None,
        }
        self._state_file.write_text(json.dumps(state, indent=2))
        self._state_file.chmod(0o600)

    def _read_state(self) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return None
        return state

    def _write_kubeconfig(self, server: str, creds: ClusterCredentials) -> None:
        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": CONTEXT,
                    "cluster": {"server": server, "certificate-authority-data": b64(creds.ca_cert)},
                }
            ],
            "users": [
                {
                    "name": "kperf-admin",
                    "user": {
                        "client-certificate-data": b64(creds.admin_cert),
                        "client-key-data": b64(creds.admin_key),
                    },
                },
                {"name": "kperf-token-admin", "user": {"token": creds.admin_token}},
            ],
            "contexts": [
                {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "kperf-admin"}},
                {
                    "name": TOKEN_CONTEXT,
                    "context": {"cluster": CONTEXT, "user": "kperf-token-admin"},
                },
            ],
            "current-context": CONTEXT,
        }
        # JSON is valid YAML, and every kubeconfig reader accepts it.
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)


def _settings(state: dict[str, Any] | None) -> dict[str, str]:
    limits = (state or {}).get("controllers")
    if not limits:
        return {}
    return {
        "controller client limits": (
            f"--kube-api-qps={limits['kube-api-qps']} --kube-api-burst={limits['kube-api-burst']}"
            " (controller-manager, scheduler; defaults 20/30, 50/100)"
        )
    }


def _https_get(server: str, path: str, ca: Path, token: str) -> tuple[int, bytes]:
    host, port = server.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(ca))
    conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=5)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return 0, b""
    finally:
        conn.close()


def _https_healthz(port: int) -> bool:
    # Controller-manager and scheduler serve /healthz with a self-signed certificate of their own.
    context = ssl._create_unverified_context()
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _http_get_ok(url: str) -> bool:
    host, port = url.removeprefix("http://").split("/", 1)[0].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/" + url.split("/", 3)[3])
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
