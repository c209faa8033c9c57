"""Helm for the backends that install charts (kwok node pools, runner groups): helm-python-sdk
(Helm's Go SDK in-process, no helm binary), its errors turned into one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kperf_core.errors import BackendError


def helm_config(kubeconfig: Path | None, context: str | None, namespace: str) -> Any:
    import helm_python as helm

    return helm.Config(kubeconfig_path=kubeconfig, kube_context=context, namespace=namespace)


def helm_call(config: Any, action: str, *args: Any, **kwargs: Any) -> Any:
    """``config.<action>(*args, **kwargs)``; a Helm error is a :class:`BackendError` naming the
    action and its release or chart."""
    import helm_python as helm

    try:
        return getattr(config, action)(*args, **kwargs)
    except helm.HelmError as exc:
        target = next((str(a) for a in args if isinstance(a, str)), "")
        message = " ".join(str(exc).split())
        raise BackendError(f"helm {action} {target}: {message}") from None
