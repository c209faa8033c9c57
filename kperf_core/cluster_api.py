"""The Kubernetes client kperf uses for setup calls (nodes, workloads, releases' objects) — not
for the measured load, which goes through the engine — and its errors as one line each."""

from __future__ import annotations

import contextlib
import json
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
