"""``kperf plugins``: what is installed and what each plugin registered."""

from __future__ import annotations

import json

import click

from kperf_core import hookimpl
from kperf_core.cli import plugin_manager
from kperf_core.commands import CommandRegistry


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_command(as_json: bool) -> None:
    """List loaded plugins, their distribution and version, and what they registered."""
    pm = plugin_manager()
    rows = [
        {
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "module": info.module,
            "builtin": info.builtin,
            "blocked": False,
            "registered": pm.registered_by(info.name),
        }
        for info in pm.plugins()
    ]
    # Blocked plugins (`-p no:NAME`) were never imported: only their names are known.
    rows += [
        {
            "name": name,
            "distribution": None,
            "version": None,
            "module": None,
            "builtin": None,
            "blocked": True,
            "registered": {},
        }
        for name in pm.blocked()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = [("PLUGIN", "DISTRIBUTION", "VERSION", "REGISTERED")]
    for row in rows:
        registered = "; ".join(f"{kind}: {', '.join(n)}" for kind, n in row["registered"].items())
        if row["blocked"]:
            registered = "blocked (-p no:NAME)"
        table.append(
            (row["name"], row["distribution"] or "-", row["version"] or "-", registered or "-")
        )
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for r in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[3])


@hookimpl
def kperf_register_commands(commands: CommandRegistry) -> None:
    commands.add(plugins_command, programs=("kperf", "runkperf"))
