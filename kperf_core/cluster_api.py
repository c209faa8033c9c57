"""The Kubernetes client kperf uses for setup calls (nodes, workloads, releases' objects) — not
for the measured load, which goes through the engine — and its errors as one line each."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kperf_core.errors import ClusterError


def api_client(kubeconfig: Path | None, context: str | None) -> Any:
    """A ``kubernetes`` ApiClient from the same kubeconfig rules as the load engine; an
    unreachable or refusing cluster is one line."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    from kperf_core.engine.blocking_client import check_reachable
    from kperf_core.kube import load_endpoint

    check_reachable(load_endpoint(kubeconfig, context))
    try:
        if kubeconfig is None and _in_cluster():
            from kubernetes.config.incluster_config import InClusterConfigLoader

            from kperf_core.kube import service_account_dir

            # The engine's rule for where a pod's files are ($KPERF_SERVICE_ACCOUNT_DIR when a
            # process plays a pod without a container), not the client's fixed path.
            directory = service_account_dir()
            configuration = client.Configuration()
            InClusterConfigLoader(  # type: ignore[no-untyped-call]
                token_filename=str(directory / "token"), cert_filename=str(directory / "ca.crt")
            ).load_and_set(configuration)
            return client.ApiClient(configuration)
        return config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig) if kubeconfig else None, context=context
        )
    except ConfigException as exc:
        raise ClusterError(f"kubeconfig: {exc}") from None


def _in_cluster() -> bool:
    return "KUBERNETES_SERVICE_HOST" in os.environ and "KUBECONFIG" not in os.environ


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
