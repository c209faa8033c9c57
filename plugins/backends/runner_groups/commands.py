"""``kperf runnergroup`` (alias ``rg``): ``run | status | result | delete``, and the hidden
``server`` and ``runner`` the runner image executes inside the cluster.

Flags and defaults are upstream's; where kperf differs:

* ``run`` takes several ``--runnergroup`` URIs (groups ``runnergroup-server-0``, ``-1``, …);
* ``--affinity`` replaces a spec's ``nodeAffinity`` only when given (upstream always did);
* ``--toleration KEY[=VALUE]:EFFECT`` lets the server and runners onto tainted nodes (for example
  the local control plane's virtual nodes that execute kperf's pods);
* ``--backend`` picks a runner-group backend plugin (built in: ``helm``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import click

from kperf_core.cli import plugin_manager
from kperf_core.cluster_cli import CONTEXT_OPTION, KUBECONFIG_OPTION, ApiErrorsGroup
from kperf_core.durations import Duration
from kperf_core.errors import BackendError, ConfigError
from kperf_core.report_outputs import SINK_OPTION, SLO_OPTION

BACKEND_OPTION = click.option(
    "--backend",
    default="helm",
    show_default=True,
    help="Runner-group backend: a plugin's name (built in: helm).",
)


@click.group("runnergroup", cls=ApiErrorsGroup)
def runnergroup_group() -> None:
    """Distributed load: runner pods placed in the cluster, their reports merged into one."""


def _backend(name: str, kubeconfig: Path | None, context: str | None):  # type: ignore[no-untyped-def]
    registry = plugin_manager().backends.runner_groups
    if name not in registry.names():
        raise ConfigError(
            f"--backend {name!r}: no such runner-group backend (available: "
            f"{', '.join(registry.names()) or 'none'})"
        )
    return registry[name](kubeconfig, context)


@runnergroup_group.command("run")
@click.option(
    "--runnergroup",
    "uris",
    multiple=True,
    required=True,
    metavar="URI",
    help="Runner-group spec: file:///abs/path.yaml or configmap://NAME?namespace=NS&specName=KEY "
    "(repeat for several groups).",
)
@click.option("--runner-image", required=True, help="Image of the server and runner pods.")
@click.option(
    "--runner-flowcontrol",
    default="workload-low:1000",
    show_default=True,
    metavar="PRIORITY_LEVEL:PRECEDENCE",
    help="Priority level and matching precedence of the runners' FlowSchema.",
)
@click.option(
    "--affinity",
    multiple=True,
    metavar="KEY=V1[,V2]",
    help="Required node affinity of the server and (replacing the specs') of the runners.",
)
@click.option(
    "--toleration",
    "tolerations",
    multiple=True,
    metavar="KEY[=VALUE]:EFFECT",
    help="Toleration of the server and runner pods (repeatable).",
)
@click.option(
    "--runner-verbosity", type=click.IntRange(min=0), default=2, show_default=True, help="-v level."
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=120,
    show_default=True,
    help="Seconds to wait for the server pod to be ready (0: do not wait).",
)
@BACKEND_OPTION
@KUBECONFIG_OPTION
@CONTEXT_OPTION
def run_command(
    uris: tuple[str, ...],
    runner_image: str,
    runner_flowcontrol: str,
    affinity: tuple[str, ...],
    tolerations: tuple[str, ...],
    runner_verbosity: int,
    wait: float,
    backend: str,
    kubeconfig: Path | None,
    context: str | None,
) -> None:
    """Place runner groups: a server that starts each group's runners and merges their reports."""
    from kperf_core.backends import RunnerGroupPlan

    from .specs import (
        ConfigMapSource,
        parse_affinity,
        parse_flowcontrol,
        parse_spec_uri,
        parse_toleration,
    )

    sources = [parse_spec_uri(uri) for uri in uris]
    flowcontrol = parse_flowcontrol(runner_flowcontrol)
    node_affinity = parse_affinity(affinity)
    parsed_tolerations = tuple(parse_toleration(t) for t in tolerations)
    if not runner_image.strip():
        raise ConfigError("--runner-image must not be empty")
    core_v1 = None
    if any(isinstance(source, ConfigMapSource) for source in sources):
        from kubernetes import client

        from kperf_core.cluster_api import api_client

        core_v1 = client.CoreV1Api(api_client(kubeconfig, context))
    specs = tuple(_spec_text(source, core_v1, node_affinity) for source in sources)
    placer = _backend(backend, kubeconfig, context)
    plan = RunnerGroupPlan(
        specs=specs,
        runner_image=runner_image,
        priority_level=flowcontrol.priority_level,
        matching_precedence=flowcontrol.matching_precedence,
        node_affinity=node_affinity,
        runner_verbosity=runner_verbosity,
        tolerations=parsed_tolerations,
    )
    placer.run(plan, wait)
    click.echo(f"runner groups: {len(specs)} placed ({placer.name})", err=True)


def _spec_text(source: Any, core_v1: Any, node_affinity: dict[str, tuple[str, ...]]) -> str:
    """A spec's YAML, validated as ``kperf runner run`` validates profiles (file:line problems),
    with ``--affinity`` applied; ``core_v1`` reads ConfigMap sources."""
    from kperf_core.profile import parse_runner_group_spec

    from .specs import dump_document, load_document, read_spec_text

    text = read_spec_text(source, core_v1)
    parse_runner_group_spec(text, source.describe(), plugin_manager().request_types)
    document = load_document(text)
    if node_affinity:
        document["nodeAffinity"] = {k: list(v) for k, v in node_affinity.items()}
    return dump_document(document)


OUTPUT_OPTION = click.option(
    "--output", "-o", type=click.Choice(["table", "json", "yaml"]), default="table"
)


@runnergroup_group.command("status")
@OUTPUT_OPTION
@BACKEND_OPTION
@KUBECONFIG_OPTION
@CONTEXT_OPTION
def status_command(output: str, backend: str, kubeconfig: Path | None, context: str | None) -> None:
    """Show each runner group: runners, how many succeeded and failed, state, start time."""
    from kperf_core.cli_output import echo_document, echo_table

    groups = _backend(backend, kubeconfig, context).status()
    if output != "table":
        echo_document(groups, output)
        return
    echo_table(
        [("NAME", "COUNT", "SUCCEEDED", "FAILED", "STATE", "START")]
        + [
            (g["name"], g["spec"]["count"], g["status"]["succeeded"], g["status"]["failed"],
             g["status"]["state"], g["status"]["startTime"] or "unknown")
            for g in groups
        ]
    )  # fmt: skip


@runnergroup_group.command("result")
@click.option(
    "--wait/--no-wait", default=True, show_default=True, help="Wait for every runner to finish."
)
@click.option(
    "--timeout",
    type=Duration(0, min_open=True),
    default="1h",
    show_default=True,
    help="How long to wait at most (with --wait): upstream's 1h, 30m, 90s, or seconds.",
)
@SINK_OPTION
@SLO_OPTION
@BACKEND_OPTION
@KUBECONFIG_OPTION
@CONTEXT_OPTION
def result_command(
    wait: bool,
    timeout: float,
    sinks: tuple[str, ...],
    slo: str | None,
    backend: str,
    kubeconfig: Path | None,
    context: str | None,
) -> None:
    """Deliver the merged report (JSON on stdout by default): the aggregate, per group and per
    runner, to the sinks and SLO checks of ``kperf runner run``."""
    from kperf_core.report_outputs import prepare_outputs

    outputs = prepare_outputs(plugin_manager(), sinks, None, slo)
    report = _backend(backend, kubeconfig, context).result(wait, timeout)
    if "aggregated" not in report:
        # Every runner died before posting: there is no measurement to report or judge.
        raise BackendError(
            f"no runner posted a result (without one: {', '.join(report.get('missing', ()))})"
        )
    report["kperf"] = _merged_report_facts(kubeconfig, context)
    outputs.deliver(report)
    if report.get("missing"):
        click.echo(f"kperf: runners without a result: {', '.join(report['missing'])}", err=True)
    outputs.finish()


def _merged_report_facts(kubeconfig: Path | None, context: str | None) -> dict[str, Any]:
    """``kperf``: what a runner's report says of itself, for the merge of several runners."""
    from kperf_core import __version__
    from kperf_core.engine.blocking_client import check_reachable
    from kperf_core.kube import load_endpoint
    from kperf_core.report_model import REPORT_FORMAT, RunFacts, section_to_document

    endpoint = load_endpoint(kubeconfig, context)
    facts = RunFacts(
        version=__version__,
        server=endpoint.server,
        server_version=check_reachable(endpoint) or "unknown",
        seed=None,
        interrupted=False,
        report_format=REPORT_FORMAT,
    )
    document: dict[str, Any] = section_to_document(facts)
    return document


@runnergroup_group.command("delete")
@BACKEND_OPTION
@KUBECONFIG_OPTION
@CONTEXT_OPTION
def delete_command(backend: str, kubeconfig: Path | None, context: str | None) -> None:
    """Remove the runner groups: release, server, Jobs, runners and stored results."""
    _backend(backend, kubeconfig, context).delete()
    click.echo("runner groups: deleted", err=True)


runnergroup_group.add_command(delete_command, name="del")


def aliased() -> click.Group:
    """Upstream's alias ``rg``, hidden from the command list."""
    alias = copy.copy(runnergroup_group)
    alias.name, alias.hidden = "rg", True
    return alias
