"""Click pieces every cluster-facing command shares: ``--kubeconfig``/``--context``, and a group
whose sub-commands' Kubernetes client errors become one line (exit 4), not a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

KUBECONFIG_OPTION = click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config).",
)
CONTEXT_OPTION = click.option("--context", "context", default=None, help="Kubeconfig context.")


class ApiErrorsGroup(click.Group):
    """A group whose sub-commands' Kubernetes client errors are one line each."""

    def invoke(self, ctx: click.Context) -> Any:
        from kperf_core.cluster_api import api_errors

        with api_errors():
            return super().invoke(ctx)
