"""A third-party kperf plugin: one CLI command that talks to the plugin manager it was loaded by."""

from __future__ import annotations

import click

from kperf_core import hookimpl
from kperf_core.cli import plugin_manager


@click.command("hello")
@click.argument("who", default="kperf")
def hello(who: str) -> None:
    """Greet, and show which plugins this kperf loaded."""
    names = sorted(info.name for info in plugin_manager().plugins())
    click.echo(f"hello {who} from a third-party plugin; loaded plugins: {', '.join(names)}")


@hookimpl
def kperf_register_commands(commands):
    commands.add(hello)
