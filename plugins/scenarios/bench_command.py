"""``runkperf bench``: one sub-command per registered scenario, generated from the registry.

The command-level flags are upstream's (``--kubeconfig``, ``--runner-image``,
``--runner-flowcontrol``, ``--vc-affinity``, ``--rg-affinity``, ``--result``, hidden ``--eks``)
plus kperf's ``--scale``, ``--sink``, ``--slo`` and the backends; they go before the case name,
the case's own flags after it. Only the report goes to stdout; progress goes to stderr.
"""

from __future__ import annotations

from typing import Any

import click

from kperf_core import hookimpl
from kperf_core.cli import plugin_manager
from kperf_core.cluster_cli import CONTEXT_OPTION, KUBECONFIG_OPTION
from kperf_core.commands import CommandRegistry
from kperf_core.durations import Duration
from kperf_core.report_outputs import output_options
from kperf_core.scenarios import DEFAULT_RG_AFFINITY, DEFAULT_VC_AFFINITY, Scenario

#: The runner image on the local control plane: the simulator runs this installation's kperf
#: whatever the image says (no container runtime there), so any name does.
LOCAL_RUNNER_IMAGE = "kperf:local"


class BenchGroup(click.Group):
    """Sub-commands come from the scenario registry; Kubernetes client errors are one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(plugin_manager(ctx).scenarios.names())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        scenario = plugin_manager(ctx).scenarios.get(cmd_name)
        return None if scenario is None else case_command(scenario)

    def invoke(self, ctx: click.Context) -> Any:
        from kperf_core.cluster_api import api_errors

        with api_errors():
            return super().invoke(ctx)


def cluster_flags(f: Any) -> Any:
    """Flags ``bench`` and ``warmup`` share: the cluster, the runners, the backends."""
    options = [
        KUBECONFIG_OPTION,
        CONTEXT_OPTION,
        click.option(
            "--runner-image",
            default=None,
            help=f"Image of the runner pods (required on a cluster; on the local control plane "
            f"{LOCAL_RUNNER_IMAGE!r}: the simulator runs this kperf).",
        ),
        click.option(
            "--runner-flowcontrol",
            default="workload-low:1000",
            show_default=True,
            metavar="PRIORITY_LEVEL:PRECEDENCE",
            help="Priority level and matching precedence of the runners' FlowSchema.",
        ),
        click.option(
            "--vc-affinity",
            default=DEFAULT_VC_AFFINITY,
            show_default=True,
            metavar="KEY=V1[,V2]",
            help="Where the virtual nodes' controllers may run (kwok).",
        ),
        click.option(
            "--rg-affinity",
            default=DEFAULT_RG_AFFINITY,
            show_default=True,
            metavar="KEY=V1[,V2]",
            help="Where the runners may run (on a cluster; locally a pool of the run's own).",
        ),
        click.option(
            "--eks", is_flag=True, hidden=True, help="Share an m4.large node's providerID."
        ),
        click.option(
            "--node-pool-backend",
            default=None,
            help="Virtual nodes' backend (default: embedded on the local control plane, else "
            "kwok).",
        ),
        click.option(
            "--runner-group-backend",
            default="helm",
            show_default=True,
            help="Runner groups' backend.",
        ),
        click.option(
            "--wait",
            type=Duration(0, min_open=True),
            default="5m",
            show_default=True,
            help="How long to wait for nodes, the runner-group server, and namespaces to go "
            "(seconds, or 90s, 5m).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.group("bench", cls=BenchGroup)
@cluster_flags
@click.option(
    "--scale",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=1.0,
    show_default=True,
    help="Shrink node, pod, object, runner and request counts to this fraction (try a case "
    "small); recorded in the report.",
)
@output_options
@click.pass_context
def bench_group(ctx: click.Context, **flags: Any) -> None:
    """Run a benchmark case: virtual nodes, a workload, a runner group, a report (JSON on stdout
    or --result). Flags of the case go after its name."""
    ctx.obj = flags


def case_command(scenario: type[Scenario]) -> click.Command:
    """The ``bench`` sub-command of one scenario: its own options, its docstring as help."""

    def callback(**options: Any) -> None:
        flags = click.get_current_context().find_object(dict) or {}
        run_case(scenario(), flags, options)

    return click.Command(
        scenario.name,
        params=list(scenario.options),
        callback=callback,
        help=scenario.__doc__,
        short_help=scenario.summary,
    )


def run_case(scenario: Scenario, flags: dict[str, Any], options: dict[str, Any]) -> None:
    from kperf_core.bench_run import run_scenario
    from kperf_core.errors import ConfigError
    from kperf_core.live_status import LiveStatus
    from kperf_core.report_outputs import prepare_outputs

    pm = plugin_manager()
    settings = bench_settings(flags, scale=flags.get("scale", 1.0))
    problems = scenario.check(settings, options)
    if problems:
        raise ConfigError(f"bench {scenario.name}: " + "; ".join(problems))
    outputs = prepare_outputs(pm, flags["sinks"], flags["result_path"], flags["slo"])
    status = LiveStatus()
    try:
        report = run_scenario(scenario, settings, options, pm, status)
    finally:
        status.close()
    outputs.deliver(report.document())
    outputs.finish()


def bench_settings(flags: dict[str, Any], scale: float) -> Any:
    """:class:`~kperf_core.scenarios.BenchSettings` from the command-level flags: one line for
    anything wrong, before anything is created."""
    from kperf_core.errors import ConfigError
    from kperf_core.kube import is_loopback, load_endpoint
    from kperf_core.placement import parse_affinity, parse_flowcontrol
    from kperf_core.scenarios import BenchSettings

    flowcontrol = parse_flowcontrol(flags["runner_flowcontrol"])
    vc_affinity = parse_affinity((flags["vc_affinity"],), "--vc-affinity")
    rg_affinity = parse_affinity((flags["rg_affinity"],), "--rg-affinity")
    local = is_loopback(load_endpoint(flags["kubeconfig"], flags["context"]).server)
    image = flags["runner_image"]
    if image is None:
        if not local:
            raise ConfigError("--runner-image is required on a cluster (a kperf image)")
        image = LOCAL_RUNNER_IMAGE
    if not image.strip():
        raise ConfigError("--runner-image must not be empty")
    return BenchSettings(
        kubeconfig=flags["kubeconfig"],
        context=flags["context"],
        runner_image=image,
        priority_level=flowcontrol.priority_level,
        matching_precedence=flowcontrol.matching_precedence,
        vc_affinity=vc_affinity,
        rg_affinity=rg_affinity,
        eks=flags["eks"],
        scale=scale,
        node_pool_backend=flags["node_pool_backend"] or ("embedded" if local else "kwok"),
        runner_group_backend=flags["runner_group_backend"],
        local=local,
        wait=flags["wait"],
    )


@hookimpl
def kperf_register_commands(commands: CommandRegistry) -> None:
    commands.add(bench_group, programs=("kperf", "runkperf"))
