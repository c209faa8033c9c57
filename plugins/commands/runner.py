"""``kperf runner run``: run a load profile from this process and report what was measured.

Flags and defaults are upstream's. Where upstream surprises, kperf chose:

* flag overrides (``--rate``, ``--total``, ``--duration``, ``--conns``, ``--client``,
  ``--content-type``, ``--disable-http2``, ``--max-retries``) apply to **every** spec; upstream
  refuses them for multi-spec profiles;
* ``--total`` and ``--duration`` together are two limits, the first reached ends the spec; upstream
  silently drops the duration;
* a spec with neither total nor duration runs 1,000 requests (upstream's ``--total`` default).

``--config`` takes a load profile or a runner-group spec (its ``loadProfile`` is used).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import attrs
import click

from kperf_core import hookimpl
from kperf_core.cli import plugin_manager
from kperf_core.commands import CommandRegistry
from kperf_core.errors import ConfigError
from kperf_core.live_status import LiveStatus
from kperf_core.report_outputs import output_options

DEFAULT_TOTAL = 1000


@click.group("runner")
def runner_group() -> None:
    """Generate load from this process."""


@runner_group.command("run")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Load profile YAML (or a runner-group spec: its loadProfile is used).",
)
@click.option(
    "--kubeconfig",
    type=click.Path(path_type=Path),
    default=None,
    help="Kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config).",
)
@click.option("--context", "kube_context", default=None, help="Kubeconfig context to use.")
@click.option(
    "--client",
    type=click.IntRange(min=1),
    default=None,
    help="Concurrent in-flight requests per spec (profile value if not given).",
)
@click.option(
    "--conns",
    type=click.IntRange(min=1),
    default=None,
    help="Connections per spec (HTTP/2 multiplexes `client` streams over them).",
)
@click.option(
    "--content-type",
    type=click.Choice(["json", "protobuf"]),
    default=None,
    help="Response encoding to ask for.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=None,
    help="Requests per second (0 = unlimited).",
)
@click.option(
    "--total",
    type=click.IntRange(min=1),
    default=None,
    help=f"Requests per spec (default {DEFAULT_TOTAL} when a spec has no total or duration).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds per spec; with --total, whichever is reached first ends the spec.",
)
@click.option(
    "--arrival",
    type=click.Choice(["closed", "constant", "poisson"]),
    default=None,
    help="closed: upstream's closed loop with a rate cap; constant/poisson: open-loop "
    "arrivals at --rate, latency measured from the intended send time.",
)
@click.option(
    "--timeout",
    "request_timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Client-side deadline per request, seconds (default 60).",
)
@click.option("--user-agent", default="", help="User-Agent header (default: kperf).")
@click.option("--disable-http2", is_flag=True, default=None, help="Use HTTP/1.1.")
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    default=None,
    help="Retries of 429/5xx responses that carry Retry-After.",
)
@click.option("--seed", type=int, default=None, help="Seed for request choice and random names.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Engine processes sharing each spec's rate, client, conns and total (default: the "
    "cores this process may use, at most one per client slot and HTTP/2 connection; one when "
    "the API server is on this machine).",
)
@output_options
@click.option(
    "--no-server-metrics",
    is_flag=True,
    help="Do not read the API server's /metrics before and after the run (no `server` section).",
)
@click.option("--raw-data", is_flag=True, help="Include every latency and error in the report.")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Show the effective profile (after overrides) and the server on stderr.",
)
def run_command(
    config_path: Path,
    kubeconfig: Path | None,
    kube_context: str | None,
    result_path: Path | None,
    sinks: tuple[str, ...],
    slo: str | None,
    no_server_metrics: bool,
    raw_data: bool,
    user_agent: str,
    seed: int | None,
    workers: int | None,
    verbose: int,
    **overrides: Any,
) -> None:
    """Run a load profile against the API server and print the report (JSON)."""
    from kperf_core.engine import LoadRun, RunSettings
    from kperf_core.engine.blocking_client import check_reachable
    from kperf_core.engine.workers import worker_count
    from kperf_core.kube import load_endpoint
    from kperf_core.report_outputs import prepare_outputs

    pm = plugin_manager()
    profile = _effective_profile(pm, config_path, overrides)
    # every output is checked before the first request: a misspelt sink costs no run
    outputs = prepare_outputs(pm, sinks, result_path, slo)
    if no_server_metrics:
        # the built-in server view's entry-point name: the flag is `-p no:server-metrics`, spelt
        # as a command option (no import of the plugin: commands depend on the core only)
        pm.disable("server-metrics")
    endpoint = load_endpoint(kubeconfig, kube_context)
    server_version = check_reachable(endpoint)
    if verbose:
        _show_plan(profile, endpoint.server, server_version)

    stop = threading.Event()
    status = LiveStatus()
    settings = RunSettings(
        user_agent=user_agent,
        keep_raw=raw_data,
        seed=seed,
        interrupted=stop.is_set,
        progress=lambda progress: status.update(progress.line()),
    )
    workers = worker_count(workers, profile, endpoint.server)
    run = LoadRun(profile, endpoint, pm.request_types, settings, raw_data, workers, server_version)
    try:
        with _stop_on_signals(stop):
            report = pm.run(run)
    finally:
        status.close()
    outputs.deliver(report)
    _summarise(report)
    if stop.is_set():
        click.echo("interrupted: the report holds what was measured until then", err=True)
        sys.exit(130)
    outputs.finish()


def _effective_profile(pm: Any, config_path: Path, overrides: dict[str, Any]) -> Any:
    """The profile file with the command line's overrides, checked again as a whole."""
    from kperf_core.profile import read_profile_file

    try:
        text = config_path.read_text()
    except OSError as exc:
        raise ConfigError(f"--config {config_path}: cannot read: {exc.strerror or exc}") from None
    profile_file = read_profile_file(text, str(config_path), pm.request_types)
    profile = apply_overrides(profile_file.profile, overrides)
    given = [
        "--" + {"request_timeout": "timeout"}.get(name, name).replace("_", "-")
        for name, value in overrides.items()
        if value is not None
    ]
    # every rule again, before the first request: an override can break one
    profile_file.check(
        profile, pm.request_types, f"with {' '.join(given)}" if given else "with the defaults"
    )
    return profile


def _summarise(report: Any) -> None:
    """A few lines for a person on stderr (stdout holds the report when no sink says otherwise)."""
    from kperf_core.report import summary_lines
    from kperf_core.report_model import report_to_document

    for line in summary_lines(report_to_document(report)):
        click.echo(line, err=True)


def apply_overrides(profile: Any, overrides: dict[str, Any]) -> Any:
    """Apply command-line overrides to every spec, then upstream's default total."""
    fields = {
        "rate": "rate",
        "total": "total",
        "duration": "duration",
        "conns": "conns",
        "client": "client",
        "content_type": "content_type",
        "disable_http2": "disable_http2",
        "max_retries": "max_retries",
        "arrival": "arrival",
        "request_timeout": "timeout",
    }
    given = {fields[k]: v for k, v in overrides.items() if v is not None}
    specs = []
    for spec in profile.specs:
        spec = attrs.evolve(spec, **given)
        if spec.total == 0 and spec.duration == 0:
            spec = attrs.evolve(spec, total=DEFAULT_TOTAL)
        specs.append(spec)
    return attrs.evolve(profile, specs=tuple(specs))


class _stop_on_signals:
    """SIGINT/SIGTERM end the run gracefully (the report is still written); a second one kills."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            if self.stop.is_set():
                raise KeyboardInterrupt
            self.stop.set()
            click.echo("\nstopping: finishing the report (Ctrl-C again to abort)", err=True)

        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, handler)

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self.previous.items():
            signal.signal(sig, previous)


def _show_plan(profile: Any, server: str, server_version: str) -> None:
    from ruamel.yaml import YAML

    from kperf_core.profile import profile_to_dict

    click.echo(f"server {server} ({server_version}); effective profile:", err=True)
    YAML().dump(profile_to_dict(profile), sys.stderr)


@hookimpl
def kperf_register_commands(commands: CommandRegistry) -> None:
    commands.add(runner_group)
