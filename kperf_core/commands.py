"""The registry CLI command groups are added to, and the click group that loads them lazily."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import click

from kperf_core.registry import PluginRegistry, Registry

#: The console scripts kperf installs. ``runkperf`` carries the end-to-end scenario commands.
PROGRAMS = ("kperf", "runkperf")


@attrs.frozen
class CommandEntry:
    """A command and the programs (``kperf``, ``runkperf``) it appears in."""

    name: str
    command: click.Command
    programs: tuple[str, ...]


class CommandRegistry:
    """What ``kperf_register_commands`` receives."""

    def __init__(self, registry: PluginRegistry[CommandEntry]) -> None:
        self._registry = registry

    def add(
        self, command: click.Command, *, programs: tuple[str, ...] = ("kperf",)
    ) -> click.Command:
        """Add a click command (usually a group) to the given programs."""
        unknown = set(programs) - set(PROGRAMS)
        if unknown or not programs:
            raise ValueError(f"programs must be a non-empty subset of {PROGRAMS}, got {programs}")
        if not command.name:
            raise ValueError(f"command {command!r} has no name")
        self._registry.add(CommandEntry(command.name, command, tuple(programs)))
        return command


class PluginCommandGroup(click.Group):
    """A root group whose sub-commands come from plugins, collected only when needed.

    ``commands_for`` is called with the click context and returns the command registry; building
    it loads plugins, so ``kperf --version`` never pays for it.
    """

    def __init__(
        self,
        *args: object,
        program: str,
        commands_for: Callable[[click.Context], Registry[CommandEntry]],
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.program = program
        self._commands_for = commands_for

    def list_commands(self, ctx: click.Context) -> list[str]:
        registry = self._commands_for(ctx)
        return sorted(e.name for e in registry.entries() if self.program in e.item.programs)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self._commands_for(ctx).get(cmd_name)
        if entry is None or self.program not in entry.programs:
            return None
        return entry.command
