"""``kperf local up|status|down|provision``: the zero-setup control plane from the command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from .binaries import CURRENT_KUBE_VERSION, DEBIAN_KUBE_VERSION
from .control_plane import LocalControlPlane


def default_state_dir() -> Path:
    if os.environ.get("KPERF_LOCAL_DIR"):
        return Path(os.environ["KPERF_LOCAL_DIR"])
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "kperf" / "local"


dir_option = click.option(
    "--dir",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=default_state_dir,
    show_default="$KPERF_LOCAL_DIR or ~/.local/state/kperf/local",
    help="Directory holding the control plane's data, certificates, logs and kubeconfig.",
)


@click.group("local")
def local_group() -> None:
    """A real etcd + kube-apiserver (+ controller-manager, scheduler) on loopback."""


@local_group.command("up")
@dir_option
@click.option(
    "--bin-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Look here first for etcd, kube-apiserver, kube-controller-manager, kube-scheduler "
    "(then PATH, KUBEBUILDER_ASSETS, the `kperf local provision` cache).",
)
@click.option(
    "--controllers/--no-controllers",
    default=True,
    show_default=True,
    help="Also run kube-controller-manager and kube-scheduler.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Seconds each component may take to become ready.",
)
@click.option(
    "--kube-version",
    default=None,
    metavar="VERSION",
    help="Kubernetes version to run, as provisioned (e.g. "
    f"{CURRENT_KUBE_VERSION}, {DEBIAN_KUBE_VERSION}). Default: the newest provisioned.",
)
def up_command(
    state_dir: Path,
    bin_dir: Path | None,
    controllers: bool,
    timeout: float,
    kube_version: str | None,
) -> None:
    """Start the control plane (or recover a crashed one); print the kubeconfig path."""
    plane = LocalControlPlane(
        state_dir,
        bin_dir=bin_dir,
        controllers=controllers,
        timeout=timeout,
        kube_version=kube_version,
    )
    click.echo(f"starting the local control plane in {plane.state_dir} …", err=True)
    status = plane.up()
    click.echo(f"ready: {status.server}  (export KUBECONFIG={status.kubeconfig})", err=True)
    click.echo(str(status.kubeconfig))


@local_group.command("status")
@dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_command(state_dir: Path, as_json: bool) -> None:
    """Show what runs; exit code 0 only when the control plane is serving."""
    status = LocalControlPlane(state_dir).status()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "running": status.running,
                    "server": status.server,
                    "version": status.version,
                    "kubeconfig": str(status.kubeconfig) if status.kubeconfig else None,
                    "components": status.components,
                    "settings": dict(status.settings),
                },
                indent=2,
            )
        )
    else:
        click.echo(f"running:    {'yes' if status.running else 'no'}")
        click.echo(f"server:     {status.server or '-'}")
        click.echo(f"version:    {status.version or '-'}")
        click.echo(f"kubeconfig: {status.kubeconfig or '-'}")
        for name, value in status.settings.items():
            click.echo(f"{name}: {value}")
        for name, c in status.components.items():
            state = f"pid {c['pid']}" if c["alive"] else "not running"
            click.echo(f"  {name:<24} {state:<14} log {c['log']}")
    sys.exit(0 if status.running else 1)


@local_group.command("down")
@dir_option
def down_command(state_dir: Path) -> None:
    """Stop every process and remove all state (also after a crash)."""
    LocalControlPlane(state_dir).down()
    click.echo(f"local control plane in {state_dir} is down", err=True)


@local_group.command("provision")
@click.option(
    "--kube-version",
    default=None,
    metavar="VERSION",
    help=f"Kubernetes version to build: {DEBIAN_KUBE_VERSION} (Debian's source) or v1.29.0 and "
    f"newer (Go modules). Default: {CURRENT_KUBE_VERSION} where Go and the module proxy allow, "
    f"else {DEBIAN_KUBE_VERSION}.",
)
def provision_command(kube_version: str | None) -> None:
    """Build (or install) etcd, kube-apiserver, -controller-manager, -scheduler and kwok; cached.

    The only step that downloads anything. Needs root (or sudo) for apt-get; the first run takes
    minutes, later runs a second. Prints the binary directory.
    """
    from .provisioning import choose_version, provision

    choice = choose_version(kube_version)
    if choice.note:
        click.echo(f"kperf: note: {choice.note}", err=True)
    click.echo(str(provision(choice.version)))
