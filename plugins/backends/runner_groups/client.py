"""The CLI's way to the runner-group server: a port-forward through the API server, as upstream.

The apiserver's pod proxy (``pods/NAME:PORT/proxy``) would be simpler, but it refuses loopback pod
IPs (``proxyutil.IsProxyableIP``; newer versions accept only global unicast), and on the local
control plane every pod kperf executes listens on loopback. A port-forward goes to the node's
kubelet instead — the real one in a cluster, the embedded simulator's on the local plane — which
connects to the pod. One request per port-forward keeps a broken stream from hanging a long poll
(upstream's runkperf retries forever around exactly that).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
from typing import Any

from kperf_core.errors import BackendError

REQUEST_TIMEOUT = 60.0


class ServerUnavailable(BackendError):
    """The port-forward opened but the server did not answer (not listening, restarting)."""


class ServerClient:
    def __init__(self, api: Any, namespace: str, pod: str, port: int, token_secret: str) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.pod = pod
        self.port = port
        self.token_secret = token_secret
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            secret = self.core.read_namespaced_secret(self.token_secret, self.namespace)
            self._token = base64.b64decode(secret.data["token"]).decode()
        return self._token

    def get(self, path: str) -> tuple[int, Any]:
        """``GET path`` on the server: (status, decoded JSON body)."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.stream import portforward

        request = (
            f"GET {path} HTTP/1.1\r\nHost: {self.pod}\r\nConnection: close\r\n"
            f"Authorization: Bearer {self.token()}\r\n\r\n"
        ).encode()
        try:
            forward = portforward(
                self.core.connect_get_namespaced_pod_portforward,
                self.pod,
                self.namespace,
                ports=str(self.port),
            )
        except ApiException as exc:
            if isinstance(exc.__context__, (KeyboardInterrupt, SystemExit)):
                # the library turns Ctrl-C (and SIGTERM, which kperf raises as Ctrl-C) into an
                # ApiException of status 0: let the command's interrupt handling see it
                raise exc.__context__ from None
            raise BackendError(
                f"port-forward to pod {self.namespace}/{self.pod}: {_reason(exc)}"
            ) from None
        sock = forward.socket(self.port)
        try:
            sock.settimeout(REQUEST_TIMEOUT)
            sock.sendall(request)
            response = http.client.HTTPResponse(sock)  # type: ignore[arg-type]
            response.begin()
            body = response.read()
            return response.status, json.loads(body or b"null")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            problem = forward.error(self.port) or str(exc) or type(exc).__name__
            raise ServerUnavailable(
                f"runner-group server {self.namespace}/{self.pod}:{self.port}: "
                f"{' '.join(problem.split())}"
            ) from None
        finally:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            forward.close()


def _reason(exc: Any) -> str:
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return f"{exc.status} {exc.reason}"
