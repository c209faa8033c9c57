"""The kubelet's endpoints for the embedded simulator's nodes: logs, so ``getPodLog`` and ``kubectl
logs`` work end to end, and port-forwarding to the pods the simulator executes
(:mod:`.kubelet_portforward`): the apiserver proxies ``/api/v1/namespaces/N/pods/P/log`` to
``https://<node InternalIP>:<kubelet port>/containerLogs/N/P/C``.

Served on 127.0.0.1 — so only when the simulator shares the apiserver's machine (the local control
plane) — with a self-signed certificate: an apiserver without ``--kubelet-certificate-authority``
does not verify kubelets. Every container "logged" ``LOG_LINES`` lines; ``tailLines`` and
``limitBytes`` are honoured as the kubelet honours them.
"""

from __future__ import annotations

import datetime
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOG_LINES = 100


def log_text(
    namespace: str, pod: str, container: str, tail: int | None, limit: int | None
) -> bytes:
    lines = [
        f"kperf embedded simulator: {namespace}/{pod}/{container} line {i + 1}\n"
        for i in range(LOG_LINES)
    ]
    if tail is not None:
        lines = lines[-tail:] if tail else []
    body = "".join(lines).encode()
    return body[:limit] if limit is not None else body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    server: _KubeletServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "portForward":
            self._port_forward(parts[1], parts[2], parse_qs(url.query))
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            self.send_error(404)
            return
        query = parse_qs(url.query)

        def number(key: str) -> int | None:
            return int(query[key][0]) if key in query else None

        executor = self.server.executor
        executed = executor.log_path(parts[1], parts[2]) if executor else None
        if executed is not None:  # a pod kperf executes: its real output
            body = tail_bytes(executed, number("tailLines"), number("limitBytes"))
        else:
            body = log_text(parts[1], parts[2], parts[3], number("tailLines"), number("limitBytes"))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # POST too: kubectl and client-go open port-forwards with POST, the Python client with GET.
    do_POST = do_GET

    def _port_forward(self, namespace: str, pod: str, query: dict[str, list[str]]) -> None:
        from .kubelet_portforward import PROTOCOL, PortForwardSession, accept_key

        executor = self.server.executor
        address = executor.pod_ip(namespace, pod) if executor else None
        ports = query.get("port", [])
        upgrade = self.headers.get("Upgrade", "").lower()
        protocols = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if address is None:
            self.send_error(404, f"pod {namespace}/{pod} is not executed here")
        elif upgrade != "websocket" or PROTOCOL not in protocols:
            self.send_error(400, f"only websocket port-forwarding ({PROTOCOL}) is served")
        elif len(ports) != 1 or not ports[0].isdigit():
            self.send_error(400, "exactly one port is forwarded per connection")
        else:
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept_key(self.headers["Sec-WebSocket-Key"]))
            self.send_header("Sec-WebSocket-Protocol", PROTOCOL)
            self.end_headers()
            self.wfile.flush()
            PortForwardSession(self.rfile, self.wfile, address, int(ports[0])).run()
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def tail_bytes(path: Path, tail: int | None, limit: int | None) -> bytes:
    try:
        body = path.read_bytes()
    except OSError:
        return b""
    if tail is not None:
        lines = body.splitlines(keepends=True)
        body = b"".join(lines[-tail:] if tail else [])
    return body[:limit] if limit is not None else body


class _KubeletServer(ThreadingHTTPServer):
    daemon_threads = True
    #: the simulator's executor of kperf's pods (None: no pod is executed)
    executor: Any = None


class LogServer:
    """HTTPS on 127.0.0.1, a free port; :meth:`start` / :meth:`stop`. With an ``executor``
    (:class:`~.pod_executor.PodExecutor`) it serves the logs of the pods that executor runs and
    port-forwards to them."""

    def __init__(self, executor: Any = None) -> None:
        self._server = _KubeletServer(("127.0.0.1", 0), _Handler)
        self._server.executor = executor
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory(prefix="kperf-kubelet-") as tmp:
            cert, key = _self_signed(Path(tmp))
            context.load_cert_chain(cert, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _self_signed(directory: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kperf-embedded-kubelet")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "kubelet.crt", directory / "kubelet.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
