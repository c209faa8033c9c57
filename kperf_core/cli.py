"""The ``kperf`` and ``runkperf`` entry points.

Both are :class:`~kperf_core.commands.PluginCommandGroup` roots: every sub-command comes from a
plugin's ``kperf_register_commands``. This module is the only place that turns a
:class:`~kperf_core.errors.KperfError` into an exit code and one clean line on stderr.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, NoReturn

import click

from kperf_core import __version__
from kperf_core.commands import CommandEntry, PluginCommandGroup
from kperf_core.errors import KperfError
from kperf_core.plugin_manager import KperfPluginManager, autoload_disabled_by_env
from kperf_core.registry import Registry


class CliState:
    """Per-invocation state on ``ctx.obj``: the plugin manager, built on first use."""

    def __init__(self, plugin_manager: KperfPluginManager | None = None) -> None:
        self._pm = plugin_manager
        self.autoload = not autoload_disabled_by_env()
        self.extra_plugins: tuple[str, ...] = ()

    @property
    def plugin_manager(self) -> KperfPluginManager:
        if self._pm is None:
            self._pm = KperfPluginManager(autoload=self.autoload)
            for module in self.extra_plugins:
                self._pm.load_module(module)
        return self._pm


def cli_state(ctx: click.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def plugin_manager(ctx: click.Context | None = None) -> KperfPluginManager:
    """The plugin manager of the running CLI invocation (for plugin commands)."""
    return cli_state(ctx or click.get_current_context()).plugin_manager


def _commands_for(ctx: click.Context) -> Registry[CommandEntry]:
    state = cli_state(ctx)
    # Root options are parsed before sub-commands are resolved, so they can shape loading.
    if ctx.params.get("disable_plugin_autoload"):
        state.autoload = False
    state.extra_plugins = tuple(ctx.params.get("plugin") or ()) or state.extra_plugins
    return state.plugin_manager.commands


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _root(program: str, help_text: str) -> PluginCommandGroup:
    @click.group(
        cls=PluginCommandGroup,
        program=program,
        commands_for=_commands_for,
        help=help_text,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    @click.version_option(__version__, prog_name=program)
    @click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv: debug).")
    @click.option(
        "--disable-plugin-autoload",
        is_flag=True,
        help="Load only built-in plugins (same as KPERF_DISABLE_PLUGIN_AUTOLOAD=1).",
    )
    @click.option(
        "-p",
        "--plugin",
        multiple=True,
        metavar="MODULE",
        help="Also load this importable module as a plugin (repeatable).",
    )
    def root(verbose: int, disable_plugin_autoload: bool, plugin: tuple[str, ...]) -> None:
        _configure_logging(verbose)

    root.name = program
    return root


kperf = _root(
    "kperf",
    "Benchmark the Kubernetes API server with realistic controller, operator and informer traffic.",
)
runkperf = _root("runkperf", "End-to-end kperf benchmark scenarios.")


def run_program(
    group: click.Group,
    program: str,
    args: list[str] | None = None,
    state: CliState | None = None,
) -> NoReturn:
    """Run a root group with kperf's error policy: no traceback for anything a user can fix.

    ``state`` lets an embedding program pass a prepared plugin manager (``CliState(pm)``).
    """
    try:
        result: Any = group.main(
            args=args, prog_name=program, standalone_mode=False, obj=state or CliState()
        )
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except KperfError as exc:
        click.echo(f"{program}: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


def kperf_main() -> NoReturn:
    run_program(kperf, "kperf")


def runkperf_main() -> NoReturn:
    run_program(runkperf, "runkperf")
