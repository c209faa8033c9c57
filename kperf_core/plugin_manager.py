"""Building the plugin manager, and the typed facade the rest of kperf talks to.

A fresh :class:`KperfPluginManager` is built per CLI invocation and per test, never at import time.
Built-in plugins are the ``kperf`` entry points of the ``kperf`` distribution itself; third-party
entry points load too unless autoload is switched off (``KPERF_DISABLE_PLUGIN_AUTOLOAD=1`` or
``kperf --disable-plugin-autoload``). Any plugin, built-in or not, can be blocked by name
(``kperf -p no:NAME``, pytest's convention, through pluggy's ``set_blocked``): it is then never
imported, so a third party can ship a replacement for a built-in under the same registered key.
Calls through ``pm.hook`` are untyped, so they all live here.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import pluggy

from kperf_core import PROJECT_NAME, hookspecs
from kperf_core.backends import Backends, ControlPlane, NodePoolBackend, RunnerGroupBackend
from kperf_core.checks import ReportCheck
from kperf_core.commands import CommandEntry, CommandRegistry
from kperf_core.errors import PluginError
from kperf_core.registry import PluginRegistry, Registry
from kperf_core.request_types import RequestType
from kperf_core.scenarios import Scenario
from kperf_core.sinks import Sink

if TYPE_CHECKING:
    from kperf_core.engine import LoadRun
    from kperf_core.report_model import Report

#: Environment switch that keeps third-party plugins from loading (built-ins always load).
DISABLE_AUTOLOAD_ENV = "KPERF_DISABLE_PLUGIN_AUTOLOAD"
#: The distribution whose entry points are the built-in plugins.
BUILTIN_DISTRIBUTION = "kperf"

T = TypeVar("T")


@attrs.frozen
class PluginInfo:
    """One loaded plugin, for ``kperf plugins``."""

    name: str
    distribution: str | None
    version: str | None
    module: str
    builtin: bool


def autoload_disabled_by_env() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


class KperfPluginManager:
    """Loads plugins and exposes what they registered through typed methods.

    :param autoload: load third-party plugins from the ``kperf`` entry-point group.
    :param builtins: load the built-in plugins (off only in tests that want an empty manager).
    :param plugins: extra plugin objects to register, as ``(name, plugin)`` pairs — how tests and
        ``kperf -p MODULE`` add a plugin without installing it.
    :param blocked: plugin names never to load (``kperf -p no:NAME``); each must name a plugin
        that would otherwise load, so a typo is an error rather than a silent no-op.
    """

    def __init__(
        self,
        *,
        autoload: bool = True,
        builtins: bool = True,
        plugins: Iterable[tuple[str, object]] = (),
        blocked: Iterable[str] = (),
    ) -> None:
        self._pm = pluggy.PluginManager(PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._info: dict[str, PluginInfo] = {}
        self._blocked: set[str] = set()
        plugins = list(plugins)
        entries = _kperf_entry_points()
        origins = _distributions(entries)
        eligible = [
            (ep, origin, builtin)
            for ep in entries
            for origin in [origins[ep.name]]
            for builtin in [origin[0] == BUILTIN_DISTRIBUTION]
            if (builtin and builtins) or (not builtin and autoload)
        ]
        self._block(blocked, known=[ep.name for ep, _, _ in eligible] + [n for n, _ in plugins])
        for ep, origin, builtin in eligible:
            if not self._pm.is_blocked(ep.name):
                self._load_entry_point(ep, origin, builtin)
        for name, plugin in plugins:
            self.register(plugin, name)
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self._pm.get_name(exc.plugin) or repr(exc.plugin)
            raise PluginError(f"plugin {name!r}: {exc}") from None

    # -- loading ------------------------------------------------------------------------------

    def _block(self, names: Iterable[str], known: list[str]) -> None:
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise PluginError(
                f"cannot block {', '.join(repr(n) for n in unknown)}: no such plugin "
                f"(plugins: {', '.join(sorted(known))})"
            )
        for name in names:
            self._pm.set_blocked(name)
            self._blocked.add(name)

    def disable(self, name: str) -> None:
        """Unregister a loaded plugin for the rest of this invocation, as ``-p no:NAME`` would
        have kept it out (a command's own switch, e.g. ``--no-server-metrics``)."""
        if self._pm.get_plugin(name) is not None:
            self._pm.set_blocked(name)
            self._blocked.add(name)
            self._invalidate()

    def blocked(self) -> list[str]:
        """Names of the plugins blocked in this manager, for ``kperf plugins``."""
        return sorted(self._blocked)

    def _load_entry_point(
        self, ep: EntryPoint, origin: tuple[str | None, str | None], builtin: bool
    ) -> None:
        dist, version = origin
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin {ep.name!r} (distribution {dist or 'unknown'}, {ep.value}) failed to "
                f"import: {type(exc).__name__}: {exc}"
            ) from exc
        self._register(plugin, ep.name, dist, version, builtin)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object (a module or an instance with hookimpls)."""
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        self._register(plugin, name, None, None, False)

    def load_module(self, module_name: str) -> None:
        """Import ``module_name`` and register it as a plugin (``kperf -p MODULE``)."""
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginError(
                f"plugin module {module_name!r} failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        self.register(module, module_name)
        self._invalidate()

    def _register(
        self, plugin: object, name: str, dist: str | None, version: str | None, builtin: bool
    ) -> None:
        if self._pm.is_blocked(name):
            return
        if name in self._info:
            other = self._info[name]
            raise PluginError(
                f"two plugins are named {name!r}: {other.module} "
                f"(distribution {other.distribution or 'none'}) and {_module_of(plugin)} "
                f"(distribution {dist or 'none'})"
            )
        try:
            self._pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise PluginError(f"plugin {name!r} is invalid: {exc}") from None
        self._info[name] = PluginInfo(name, dist, version, _module_of(plugin), builtin)

    # -- what plugins registered ----------------------------------------------------------------

    def _invalidate(self) -> None:
        for attr in ("request_types", "scenarios", "backends", "sinks", "checks", "commands"):
            self.__dict__.pop(attr, None)

    def _collect(self, hook_name: str, kind: str, make_arg: Callable[..., Any]) -> Registry[Any]:
        """Call ``hook_name`` once per implementation, each with a view bound to its plugin."""
        registry: Registry[Any] = Registry(kind)
        caller: pluggy.HookCaller = getattr(self._pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order (pluggy calls them LIFO)
            if impl.wrapper or impl.hookwrapper:
                raise PluginError(
                    f"plugin {impl.plugin_name!r}: {hook_name} cannot be implemented as a wrapper"
                )
            arg = make_arg(registry.for_plugin(impl.plugin_name), impl.plugin_name)
            try:
                # An implementation may take the hook's one argument or none at all.
                impl.function(**dict.fromkeys(impl.argnames, arg))
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} failed in {hook_name}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        return registry

    @functools.cached_property
    def request_types(self) -> Registry[type[RequestType]]:
        return self._collect("kperf_register_request_types", "request type", _plain)

    @functools.cached_property
    def scenarios(self) -> Registry[type[Scenario]]:
        return self._collect("kperf_register_scenarios", "scenario", _plain)

    @functools.cached_property
    def sinks(self) -> Registry[type[Sink]]:
        return self._collect("kperf_register_sinks", "sink", _plain)

    @functools.cached_property
    def checks(self) -> Registry[type[ReportCheck]]:
        return self._collect("kperf_register_checks", "report check", _plain)

    @functools.cached_property
    def commands(self) -> Registry[CommandEntry]:
        return self._collect(
            "kperf_register_commands", "command", lambda view, _origin: CommandRegistry(view)
        )

    @functools.cached_property
    def backends(self) -> BackendRegistries:
        control_planes: Registry[type[ControlPlane]] = Registry("control-plane backend")
        runner_groups: Registry[type[RunnerGroupBackend]] = Registry("runner-group backend")
        node_pools: Registry[type[NodePoolBackend]] = Registry("node-pool backend")

        def views(_view: PluginRegistry[Any], origin: str) -> Backends:
            return Backends(
                control_planes=control_planes.for_plugin(origin),
                runner_groups=runner_groups.for_plugin(origin),
                node_pools=node_pools.for_plugin(origin),
            )

        self._collect("kperf_register_backends", "backend", views)
        return BackendRegistries(control_planes, runner_groups, node_pools)

    # -- introspection --------------------------------------------------------------------------

    def plugins(self) -> list[PluginInfo]:
        return list(self._info.values())

    def registered_by(self, plugin_name: str) -> dict[str, list[str]]:
        """What one plugin registered, by kind — for ``kperf plugins``."""
        b = self.backends
        kinds: dict[str, Registry[Any]] = {
            "request types": self.request_types,
            "scenarios": self.scenarios,
            "control planes": b.control_planes,
            "runner groups": b.runner_groups,
            "node pools": b.node_pools,
            "sinks": self.sinks,
            "checks": self.checks,
            "commands": self.commands,
        }
        found: dict[str, list[str]] = {}
        for kind, registry in kinds.items():
            names = [e.name for e in registry.entries() if e.origin == plugin_name]
            if names:
                found[kind] = names
        return found

    def run(self, run: LoadRun) -> Report:
        """Execute a load run through the ``kperf_run`` hook (engine + wrappers)."""
        report: Report | None = self._pm.hook.kperf_run(run=run)
        if report is None:
            raise PluginError("no plugin implements kperf_run (is the built-in engine disabled?)")
        return report

    @property
    def hook(self) -> Any:
        """The raw pluggy hook relay, for the engine's lifecycle calls."""
        return self._pm.hook


@attrs.frozen
class BackendRegistries:
    control_planes: Registry[type[ControlPlane]]
    runner_groups: Registry[type[RunnerGroupBackend]]
    node_pools: Registry[type[NodePoolBackend]]


def _plain(view: PluginRegistry[Any], _origin: str) -> PluginRegistry[Any]:
    return view


def _kperf_entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=PROJECT_NAME), key=lambda ep: ep.name)


def _distributions(entries: Iterable[EntryPoint]) -> dict[str, tuple[str | None, str | None]]:
    """Each entry point's distribution (name, version). A distribution's metadata is parsed once:
    every ``dist.name`` / ``dist.version`` parses the whole METADATA file again (an email-format
    parse), and doing that twice per plugin was a third of kperf's start-up."""
    parsed: dict[int, tuple[str | None, str | None]] = {}
    origins: dict[str, tuple[str | None, str | None]] = {}
    for ep in entries:
        if ep.dist is None:
            origins[ep.name] = (None, None)
            continue
        key = id(ep.dist)
        if key not in parsed:
            metadata = ep.dist.metadata
            parsed[key] = (metadata["Name"], metadata["Version"])
        origins[ep.name] = parsed[key]
    return origins


def _module_of(plugin: object) -> str:
    name = getattr(plugin, "__name__", None)
    if isinstance(name, str):
        return name
    return f"{type(plugin).__module__}.{type(plugin).__qualname__}"
