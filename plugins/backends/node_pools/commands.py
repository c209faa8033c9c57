"""``kperf virtualcluster`` (alias ``vc``): pools of virtual nodes, and the embedded simulator."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

import attrs
import click

from kperf_core.backends import NodePoolSpec
from kperf_core.cli import plugin_manager
from kperf_core.cluster_cli import CONTEXT_OPTION, KUBECONFIG_OPTION, ApiErrorsGroup
from kperf_core.errors import ConfigError

STAGE_OPTIONS = [
    click.option(
        "--stage-delay",
        type=click.FloatRange(min=0),
        default=1.0,
        show_default=True,
        help="embedded: seconds before each pod transition (Pending→Running→Succeeded).",
    ),
    click.option(
        "--stage-jitter",
        type=click.FloatRange(min=0),
        default=4.0,
        show_default=True,
        help="embedded: up to this many seconds more, at random (kwok's 1-5 s by default).",
    ),
]


def _stage_options(f: Any) -> Any:
    for option in reversed(STAGE_OPTIONS):
        f = option(f)
    return f


@click.group("virtualcluster", cls=ApiErrorsGroup)
def virtualcluster_group() -> None:
    """Virtual nodes: pools of Node objects kept alive by kwok or kperf's embedded simulator."""


#: Upstream warns above this many nodes in one pool: kwok's controllers are sized for it.
LARGE_POOL_NODES = 300


@virtualcluster_group.group("nodepool")
@KUBECONFIG_OPTION
@CONTEXT_OPTION
@click.pass_context
def nodepool_group(ctx: click.Context, kubeconfig: Path | None, context: str | None) -> None:
    """Add, list and delete pools of virtual nodes.

    --kubeconfig/--context may come before the sub-command, as upstream takes them, or after it.
    """
    ctx.meta[_CLUSTER_KEY] = (kubeconfig, context)


_CLUSTER_KEY = "kperf.nodepool.cluster"


def _cluster(kubeconfig: Path | None, context: str | None) -> tuple[Path | None, str | None]:
    """The sub-command's --kubeconfig/--context, else the ``nodepool`` group's."""
    group_kubeconfig, group_context = click.get_current_context().meta.get(
        _CLUSTER_KEY, (None, None)
    )
    return kubeconfig or group_kubeconfig, context or group_context


def _pool_options(f: Any) -> Any:
    options = [
        click.option("--nodes", type=int, default=10, show_default=True, help="Nodes per pool."),
        click.option("--cpu", type=int, default=8, show_default=True, help="CPUs per node."),
        click.option("--memory", type=int, default=16, show_default=True, help="GiB per node."),
        click.option("--max-pods", type=int, default=110, show_default=True, help="Pods per node."),
        click.option(
            "--affinity",
            multiple=True,
            metavar="KEY=V1[,V2]",
            help="Where the pool's controllers may run (kwok).",
        ),
        click.option("--node-labels", multiple=True, metavar="KEY=VALUE", help="Extra labels."),
        click.option("--shared-provider-id", default="", help="spec.providerID of every node."),
        click.option(
            "--backend",
            default="embedded",
            show_default=True,
            help="Node-pool backend: a plugin's name (built in: embedded, kwok).",
        ),
        click.option(
            "--wait",
            type=click.FloatRange(min=0),
            default=300,
            show_default=True,
            help="Seconds to wait for every node to be Ready (0: do not wait).",
        ),
        KUBECONFIG_OPTION,
        CONTEXT_OPTION,
        _stage_options,
    ]
    for option in reversed(options):
        f = option(f)
    return f


@nodepool_group.command("add")
@click.argument("name")
@_pool_options
def add_command(name: str, **options: Any) -> None:
    """Add a pool NAME of virtual nodes and wait until they are Ready."""
    backend, spec, wait = _prepare(name, options)
    backend.add(spec, wait)
    state = "Ready" if wait else "created (not waiting for them to be Ready)"
    click.echo(f"node pool {name}: {spec.nodes} nodes {state} ({backend.name})", err=True)


@nodepool_group.command("batch-add")
@click.argument("prefix")
@click.option(
    "--batch-size", type=int, default=300, show_default=True, help="Nodes per pool at most."
)
@_pool_options
def batch_add_command(prefix: str, batch_size: int, **options: Any) -> None:
    """Add --nodes nodes as pools PREFIX-0, PREFIX-1, … of at most --batch-size nodes each."""
    if batch_size <= 0:
        raise ConfigError(f"--batch-size must be > 0 (got {batch_size})")
    total = options["nodes"]
    sizes = [min(batch_size, total - start) for start in range(0, max(total, 1), batch_size)]
    added: list[str] = []
    try:
        for i, size in enumerate(sizes):
            backend, spec, wait = _prepare(f"{prefix}-{i}", {**options, "nodes": size})
            backend.add(spec, wait)
            added.append(spec.name)
    except BaseException:
        for pool in added:  # all or nothing
            backend.delete(pool)
        raise
    click.echo(f"node pools {', '.join(added)}: {total} nodes Ready", err=True)


@nodepool_group.command("list")
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json", "yaml"]),
    default="table",
    show_default=True,
)
@KUBECONFIG_OPTION
@CONTEXT_OPTION
def list_command(output: str, kubeconfig: Path | None, context: str | None) -> None:
    """List the pools with their Ready / desired node counts."""
    from kperf_core.cli_output import echo_document, echo_table
    from kperf_core.cluster_api import api_client

    from .nodes import list_pools

    pools = [attrs.asdict(p) for p in list_pools(api_client(*_cluster(kubeconfig, context)))]
    if output != "table":
        echo_document(pools, output)
    else:
        echo_table(
            [("NAME", "BACKEND", "NODES", "CPU", "MEMORY", "MAX PODS", "STATUS")]
            + [
                (p["name"], p["backend"], f"{p['ready']} / {p['nodes']}", p["cpu"], p["memory"],
                 p["max_pods"], p["status"])
                for p in pools
            ]
        )  # fmt: skip


@nodepool_group.command("delete")
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@KUBECONFIG_OPTION
@CONTEXT_OPTION
def delete_command(names: tuple[str, ...], kubeconfig: Path | None, context: str | None) -> None:
    """Delete pools NAME...: their pods, nodes and leases (and the simulator with the last pool)."""
    from kperf_core.cluster_api import api_client

    from .nodes import list_pools

    kubeconfig, context = _cluster(kubeconfig, context)
    pools = {p.name: p for p in list_pools(api_client(kubeconfig, context))}
    for name in dict.fromkeys(names):
        if name not in pools:
            click.echo(f"node pool {name}: not found, nothing to delete", err=True)
            continue
        _backend(pools[name].backend, kubeconfig, context, {}).delete(name)
        click.echo(f"node pool {name}: deleted", err=True)


nodepool_group.add_command(delete_command, name="del")


@virtualcluster_group.command("simulate")
@KUBECONFIG_OPTION
@CONTEXT_OPTION
@_stage_options
@click.option(
    "--serve-logs/--no-serve-logs",
    default=None,
    help="Serve the kubelet log endpoint on 127.0.0.1 (default: when the apiserver is local).",
)
def simulate_command(
    kubeconfig: Path | None,
    context: str | None,
    stage_delay: float,
    stage_jitter: float,
    serve_logs: bool | None,
) -> None:
    """Run the embedded node simulator in the foreground until Ctrl-C / SIGTERM (it also ends
    after 60 s without a node to serve)."""
    import logging
    import tempfile
    from urllib.parse import urlsplit

    from kperf_core.cluster_api import api_client

    from .kubelet_logs import LogServer
    from .pod_executor import PodExecutor
    from .simulator import Simulator

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    api = api_client(kubeconfig, context)
    if serve_logs is None:
        serve_logs = urlsplit(api.configuration.host).hostname in ("127.0.0.1", "localhost", "::1")
    # kperf's own pods are executed only where the kubelet endpoint serves (a local apiserver):
    # their loopback pod IPs are reachable from here and nowhere else.
    pods_dir = Path(tempfile.mkdtemp(prefix="kperf-pods-")) if serve_logs else None
    executor = PodExecutor(api, pods_dir) if pods_dir else None
    logs = LogServer(executor) if serve_logs else None
    simulator = Simulator(
        api,
        delay=stage_delay,
        jitter=stage_jitter,
        kubelet_port=logs.port if logs else None,
        executor=executor,
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: simulator.stop())
    if logs:
        logs.start()
        logging.info("serving the kubelet log endpoint on 127.0.0.1:%d", logs.port)
    logging.info("embedded node simulator running")
    try:
        simulator.run()
    finally:
        if logs:
            logs.stop()
        if pods_dir:
            shutil.rmtree(pods_dir, ignore_errors=True)
    logging.info("embedded node simulator stopped")


def _backend(name: str, kubeconfig: Path | None, context: str | None, options: dict[str, Any]):  # type: ignore[no-untyped-def]
    registry = plugin_manager().backends.node_pools
    if name not in registry.names():
        raise ConfigError(
            f"--backend {name!r}: no such node-pool backend (available: "
            f"{', '.join(registry.names()) or 'none'})"
        )
    return registry[name](kubeconfig, context, **options)


def _prepare(name: str, options: dict[str, Any]):  # type: ignore[no-untyped-def]
    spec = NodePoolSpec(
        name=name,
        nodes=options["nodes"],
        cpu=options["cpu"],
        memory_gib=options["memory"],
        max_pods=options["max_pods"],
        affinity=_pairs(options["affinity"], "--affinity", split_values=True),
        node_labels=_pairs(options["node_labels"], "--node-labels", split_values=False),
        shared_provider_id=options["shared_provider_id"],
    )
    problems = spec.problems()
    if problems:
        raise ConfigError("; ".join(problems))
    if spec.nodes > LARGE_POOL_NODES:
        click.echo(
            f"warning: node pool {name}: {spec.nodes} nodes in one pool, more than the "
            f"{LARGE_POOL_NODES} upstream sizes a pool for; batch-add splits them",
            err=True,
        )
    backend = _backend(
        options["backend"],
        *_cluster(options["kubeconfig"], options["context"]),
        {"stage_delay": options["stage_delay"], "stage_jitter": options["stage_jitter"]},
    )
    return backend, spec, options["wait"]


def _pairs(values: tuple[str, ...], flag: str, *, split_values: bool) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {value!r}: expected KEY=VALUE")
        pairs[key] = tuple(rest.split(",")) if split_values else rest
    return pairs
