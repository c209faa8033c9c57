"""The Kubernetes client kperf uses for setup calls (nodes, workloads, releases' objects) — not
for the measured load, which goes through the engine — and its errors as one line each."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kperf_core.errors import ClusterError


def api_client(kubeconfig: Path | None, context: str | None) -> Any:
    """A ``kubernetes`` ApiClient on the process's one loaded configuration (the engine's
    endpoint and Helm's kubeconfig come from the same load); an unreachable or refusing cluster
    is one line."""
    from kubernetes import client

    from kperf_core.engine.blocking_client import check_reachable
    from kperf_core.kube import load_cluster

    access = load_cluster(kubeconfig, context)
    check_reachable(access.endpoint)
    return client.ApiClient(access.configuration)


@contextlib.contextmanager
def api_errors() -> Iterator[None]:
    """The Kubernetes client's exceptions as one-line :class:`ClusterError`s."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as exc:
        try:
            message = json.loads(exc.body or "{}").get("message") or ""
        except (ValueError, AttributeError):
            message = str(exc.body or "")[:200]
        raise ClusterError(
            f"the API server answered HTTP {exc.status} ({exc.reason}): {message}".rstrip(": ")
        ) from None
    except HTTPError as exc:
        raise ClusterError(f"cannot reach the API server: {exc}") from None


def ignore_missing(call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, where an object already gone (404) is fine."""
    from kubernetes.client.exceptions import ApiException

    try:
        return call(*args, **kwargs)
    except ApiException as exc:
        if exc.status != 404:
            raise
    return None


#: Seconds a namespace may take to go: the namespace controller deletes what is in it first.
NAMESPACE_DELETE_TIMEOUT = 120.0


def delete_namespace(api: Any, name: str, timeout: float = NAMESPACE_DELETE_TIMEOUT) -> None:
    """Delete a namespace (fine if it is gone already) and wait until it is: until then nothing
    can be created in it, and the namespace controller's cleanup is still running."""
    from kubernetes import client

    ignore_missing(client.CoreV1Api(api).delete_namespace, name)
    _wait_namespace_gone(api, name, timeout)


def await_namespace_usable(api: Any, name: str, timeout: float = NAMESPACE_DELETE_TIMEOUT) -> None:
    """Return once ``name`` can be created or written to: at once unless it is terminating (say
    an earlier delete was interrupted), then when it is gone — an install into a terminating
    namespace is refused ("unable to create new content ... being terminated")."""
    from kubernetes import client

    namespace = ignore_missing(client.CoreV1Api(api).read_namespace, name)
    if namespace is not None and namespace.metadata.deletion_timestamp is not None:
        _wait_namespace_gone(api, name, timeout)


def _wait_namespace_gone(api: Any, name: str, timeout: float) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    while ignore_missing(core.read_namespace, name) is not None:
        if time.monotonic() > deadline:
            raise ClusterError(f"namespace {name} is still being deleted after {timeout:g} s")
        time.sleep(0.5)
