"""``runkperf data configmap|daemonset add|list|delete``: data sets that give the API server
objects to serve (upstream's commands, flags and defaults).

Where upstream surprises, kperf chose: a ``--group-size`` above ``--total`` is one batch (upstream
refuses it, its own defaults included); ``list`` computes GROUP_SIZE from every batch (upstream
trusted the first ConfigMap it listed); a set that exists already is refused before anything is
created; an interrupted or failed ``add`` removes what it created; deleting the last set in a
namespace that ``add`` created removes the namespace too; DaemonSet sets are grouped by their
``dsName`` label rather than by stripping ``-<digits>`` from names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import click

from kperf_core import hookimpl
from kperf_core.cluster_cli import CONTEXT_OPTION, KUBECONFIG_OPTION, ApiErrorsGroup
from kperf_core.commands import CommandRegistry

#: Upstream hard-codes the DaemonSet commands' client rate: 30 requests/s, bursts of 10.
DAEMONSET_QPS, DAEMONSET_BURST = 30, 10
OUTPUT_OPTION = click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json", "yaml"]),
    default="table",
    show_default=True,
)


def _cluster_options(f: Any) -> Any:
    for option in reversed(
        [
            KUBECONFIG_OPTION,
            CONTEXT_OPTION,
            click.option(
                "--namespace", default="default", show_default=True, help="Namespace of the set."
            ),
        ]
    ):
        f = option(f)
    return click.pass_context(f)


@attrs.frozen
class _Where:
    kubeconfig: Path | None
    context: str | None
    namespace: str

    def api(self) -> Any:
        from kperf_core.cluster_api import api_client

        return api_client(self.kubeconfig, self.context)


def _where() -> _Where:
    return click.get_current_context().find_object(_Where)  # type: ignore[no-any-return]


@click.group("data", cls=ApiErrorsGroup)
def data_group() -> None:
    """Data sets for the API server to serve: ConfigMaps and DaemonSets."""


@data_group.group("configmap")
@_cluster_options
def configmap_group(ctx: click.Context, **where: Any) -> None:
    """ConfigMap sets: runkperf-cm-<NAME>-<i>, labelled app=runkperf, cmName=<NAME>."""
    ctx.obj = _Where(**where)


@configmap_group.command("add")
@click.argument("name")
@click.option("--size", type=int, default=100, show_default=True, help="Bytes per ConfigMap.")
@click.option("--group-size", type=int, default=30, show_default=True, help="ConfigMaps per batch.")
@click.option("--total", type=int, default=10, show_default=True, help="ConfigMaps in all.")
@click.option("--qps", type=float, default=30, show_default=True, help="Create requests/s.")
@click.option("--burst", type=int, default=10, show_default=True, help="Requests at once.")
def configmap_add(
    name: str, size: int, group_size: int, total: int, qps: float, burst: int
) -> None:
    """Create the ConfigMap set NAME."""
    from kperf_core.errors import ConfigError
    from kperf_core.live_status import LiveStatus

    from .configmap_sets import ConfigMapSet, create_set
    from .throttle import TokenBucket

    where = _where()
    spec = ConfigMapSet(
        name=name, namespace=where.namespace, size=size, group_size=group_size, total=total
    )
    problems = spec.problems() + [
        f"--{flag} must be > 0 (got {value})"
        for flag, value in (("qps", qps), ("burst", burst))
        if value <= 0
    ]
    if problems:
        raise ConfigError("; ".join(problems))
    status = LiveStatus()
    try:
        create_set(
            where.api(),
            spec,
            TokenBucket(qps, burst),
            progress=lambda done, total: status.update(f"{done}/{total} configmaps created"),
        )
    finally:
        status.close()
    click.echo(f"configmap set {name}: {total} ConfigMaps in {where.namespace}", err=True)


@configmap_group.command("list")
@click.argument("names", nargs=-1)
@OUTPUT_OPTION
def configmap_list(names: tuple[str, ...], output: str) -> None:
    """List ConfigMap sets (only NAMES if given)."""
    from .configmap_sets import list_sets

    where = _where()
    sets = list_sets(where.api(), where.namespace, names)
    _print(
        [attrs.asdict(s) for s in sets],
        output,
        ("NAME", "SIZE", "GROUP_SIZE", "TOTAL"),
        lambda s: (s["name"], s["size"], s["group_size"], s["total"]),
    )


@configmap_group.command("delete")
@click.argument("name")
def configmap_delete(name: str) -> None:
    """Delete the ConfigMap set NAME."""
    from .configmap_sets import delete_set

    where = _where()
    deleted = delete_set(where.api(), where.namespace, name)
    click.echo(f"configmap set {name}: {deleted} ConfigMaps deleted", err=True)


@data_group.group("daemonset")
@_cluster_options
def daemonset_group(ctx: click.Context, **where: Any) -> None:
    """DaemonSet sets: <NAME>-<i>, one pod per virtual node each."""
    ctx.obj = _Where(**where)


@daemonset_group.command("add")
@click.argument("name")
@click.option("--count", type=int, default=1, show_default=True, help="DaemonSets in the set.")
def daemonset_add(name: str, count: int) -> None:
    """Create the DaemonSet set NAME."""
    from .daemonset_sets import create_set
    from .throttle import TokenBucket

    where = _where()
    create_set(
        where.api(), where.namespace, name, count, TokenBucket(DAEMONSET_QPS, DAEMONSET_BURST)
    )
    click.echo(f"daemonset set {name}: {count} DaemonSets in {where.namespace}", err=True)


@daemonset_group.command("list")
@click.argument("names", nargs=-1)
@OUTPUT_OPTION
def daemonset_list(names: tuple[str, ...], output: str) -> None:
    """List DaemonSet sets (only NAMES if given)."""
    from .daemonset_sets import list_sets

    where = _where()
    sets = list_sets(where.api(), where.namespace, names)
    _print(
        [attrs.asdict(s) for s in sets],
        output,
        ("NAME", "NAMESPACE", "COUNT"),
        lambda s: (s["name"], s["namespace"], s["count"]),
    )


@daemonset_group.command("delete")
@click.argument("name")
def daemonset_delete(name: str) -> None:
    """Delete the DaemonSet set NAME (its pods follow)."""
    from .daemonset_sets import delete_set

    where = _where()
    deleted = delete_set(where.api(), where.namespace, name)
    click.echo(f"daemonset set {name}: {deleted} DaemonSets deleted", err=True)


for _group, _alias in ((configmap_group, "cm"), (daemonset_group, "ds")):
    data_group.add_command(_group, name=_alias)
configmap_group.add_command(configmap_delete, name="del")
daemonset_group.add_command(daemonset_delete, name="del")


def _print(
    rows: list[dict[str, Any]],
    output: str,
    header: Sequence[str],
    columns: Callable[[dict[str, Any]], Sequence[object]],
) -> None:
    from kperf_core.cli_output import echo_document, echo_table

    if output == "table":
        echo_table([tuple(header), *(tuple(columns(r)) for r in rows)])
    else:
        echo_document(rows, output)


@hookimpl
def kperf_register_commands(commands: CommandRegistry) -> None:
    commands.add(data_group, programs=("runkperf",))
