"""The ``kperf`` and ``runkperf`` entry points.

Both are :class:`~kperf_core.commands.PluginCommandGroup` roots: every sub-command comes from a
plugin's ``kperf_register_commands``. This module is the only place that turns a
:class:`~kperf_core.errors.KperfError` into an exit code and one clean line on stderr.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, NoReturn

import click

from kperf_core import __version__
from kperf_core.commands import CommandEntry, PluginCommandGroup
from kperf_core.errors import KperfError
from kperf_core.plugin_manager import KperfPluginManager, autoload_disabled_by_env
from kperf_core.registry import Registry

#: ``kperf -p no:NAME`` blocks plugin NAME (pytest's spelling).
BLOCK_PREFIX = "no:"
_VERBOSE_FLAGS = ("-v", "--v", "--verbose")
_PLUGIN_FLAGS = ("-p", "--plugin")


class CliState:
    """Per-invocation state on ``ctx.obj``: the plugin manager, built on first use."""

    def __init__(self, plugin_manager: KperfPluginManager | None = None) -> None:
        self._pm = plugin_manager
        self.autoload = not autoload_disabled_by_env()
        self.extra_plugins: tuple[str, ...] = ()
        self.blocked_plugins: tuple[str, ...] = ()

    @property
    def plugin_manager(self) -> KperfPluginManager:
        if self._pm is None:
            self._pm = KperfPluginManager(autoload=self.autoload, blocked=self.blocked_plugins)
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
    plugin_args = tuple(ctx.params.get("plugin") or ())
    if plugin_args:
        state.extra_plugins = tuple(p for p in plugin_args if not p.startswith(BLOCK_PREFIX))
        state.blocked_plugins = tuple(
            p.removeprefix(BLOCK_PREFIX) for p in plugin_args if p.startswith(BLOCK_PREFIX)
        )
    return state.plugin_manager.commands


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def verbosity_as_level(args: list[str]) -> list[str]:
    """Accept upstream's ``-v N`` (a level) beside the familiar ``-v``/``-vv`` among the root's
    options: a bare ``-v`` means level 1 and ``-vv…`` one level per ``v``.

    Click cannot give one option both an optional value and a count, so the root's own
    arguments — those before the first sub-command — are rewritten to the ``-v N`` form.
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            return out + args[i:]  # a sub-command: what follows is its own
        following = args[i + 1] if i + 1 < len(args) else ""
        if arg in _VERBOSE_FLAGS:
            takes_level = following.isdigit()
            out += [arg, following if takes_level else "1"]
            i += 2 if takes_level else 1
            continue
        if re.fullmatch(r"-v+", arg):
            out += ["-v", str(len(arg) - 1)]
        else:
            out.append(arg)
            if arg in _PLUGIN_FLAGS and i + 1 < len(args):
                out.append(following)  # a module name, never a verbosity flag
                i += 1
        i += 1
    return out


def _root(program: str, help_text: str) -> PluginCommandGroup:
    @click.group(
        cls=PluginCommandGroup,
        program=program,
        commands_for=_commands_for,
        help=help_text,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    @click.version_option(__version__, prog_name=program)
    @click.option(
        "-v",
        "--v",
        "--verbose",
        "verbose",
        type=click.IntRange(min=0),
        default=0,
        metavar="N",
        help="Log level on stderr, as upstream's -v N: 0 warnings, 1 progress, 2+ debug "
        "(-v alone: 1; -vv: 2).",
    )
    @click.option(
        "--disable-plugin-autoload",
        is_flag=True,
        help="Load only built-in plugins (same as KPERF_DISABLE_PLUGIN_AUTOLOAD=1).",
    )
    @click.option(
        "-p",
        "--plugin",
        multiple=True,
        metavar="MODULE|no:NAME",
        help="Also load this importable module as a plugin, or with no:NAME never load the "
        "plugin NAME (a built-in too; see `kperf plugins`). Repeatable.",
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
    args = verbosity_as_level(sys.argv[1:] if args is None else args)
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
