"""Helm for the backends that install charts (kwok node pools, runner groups): helm-python-sdk
(Helm's Go SDK in-process, no helm binary), its errors turned into one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kperf_core.errors import BackendError


def helm_config(kubeconfig: Path | None, context: str | None, namespace: str) -> Any:
    """A Helm config on the process's one loaded configuration: Helm reads the user's file only
    when that file alone holds the credentials, else kperf's resolved kubeconfig, so an exec
    plugin is not run again by Helm's own client."""
    import helm_python as helm

    from kperf_core.kube import in_memory_file, load_cluster

    tool = load_cluster(kubeconfig, context).kubeconfig_for_tools()
    path: str | Path | None = tool.path
    content = tool.content
    if content is not None:
        # Helm writes inline content to a temp file that a process killed hard leaves behind.
        path = in_memory_file(content.encode())
        content = None if path is not None else content
    return helm.Config(
        kubeconfig_path=path,
        kubeconfig_content=content,
        kube_context=tool.context,
        namespace=namespace,
    )


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
