"""The plugin manager, exercised the way a third party would: inline plugin objects."""

from __future__ import annotations

import types
from importlib.metadata import EntryPoint
from pathlib import Path

import attrs
import click
import pytest

from kperf_core import hookimpl
from kperf_core.backends import ControlPlane, ControlPlaneStatus, NodePoolBackend
from kperf_core.errors import PluginError
from kperf_core.plugin_manager import KperfPluginManager
from kperf_core.request_types import BuildContext, RequestType, WireRequest
from kperf_core.scenarios import Scenario
from kperf_core.sinks import Sink


@attrs.frozen
class EchoConfig:
    path: str


class EchoRequest(RequestType):
    name = "echo"
    config_type = EchoConfig

    def build(self) -> WireRequest:
        return WireRequest("GET", self.config.path, metrics_key=f"GET {self.config.path}")


class TinyScenario(Scenario):
    name = "tiny"
    summary = "does nothing"

    def run(self, settings):
        return {"description": "tiny"}


class NullSink(Sink):
    name = "null"

    def write(self, report, destination):
        pass


class FakeNodes(NodePoolBackend):
    name = "fake"


class ThirdPartyPlugin:
    @hookimpl
    def kperf_register_request_types(self, registry):
        registry.add(EchoRequest)

    @hookimpl
    def kperf_register_scenarios(self, registry):
        registry.add(TinyScenario)

    @hookimpl
    def kperf_register_sinks(self, registry):
        registry.add(NullSink)

    @hookimpl
    def kperf_register_backends(self, backends):
        backends.node_pools.add(FakeNodes)

    @hookimpl
    def kperf_register_commands(self, commands):
        commands.add(click.Command("echo-cmd"), programs=("runkperf",))


def test_builtins_load_from_entry_points() -> None:
    pm = KperfPluginManager(autoload=False)
    builtins = {info.name: info for info in pm.plugins()}
    assert {"local-control-plane", "plugin-inventory"} <= set(builtins)
    assert all(info.builtin and info.distribution == "kperf" for info in builtins.values())
    assert pm.backends.control_planes["local"].__name__ == "LocalControlPlane"
    assert {"local", "plugins"} <= set(pm.commands.names())


def test_inline_plugin_registers_every_kind() -> None:
    pm = KperfPluginManager(autoload=False, plugins=[("third-party", ThirdPartyPlugin())])
    assert pm.request_types["echo"] is EchoRequest
    assert pm.scenarios["tiny"] is TinyScenario
    assert pm.sinks["null"] is NullSink
    assert pm.backends.node_pools["fake"] is FakeNodes
    assert pm.commands["echo-cmd"].programs == ("runkperf",)
    assert pm.registered_by("third-party") == {
        "request types": ["echo"],
        "scenarios": ["tiny"],
        "node pools": ["fake"],
        "sinks": ["null"],
        "commands": ["echo-cmd"],
    }
    echo = pm.request_types["echo"](EchoConfig("/api/v1/pods"), BuildContext())
    request = echo.build()
    assert request.metrics_key == "GET /api/v1/pods"


def test_clashing_names_across_plugins_name_both() -> None:
    class Clash:
        @hookimpl
        def kperf_register_scenarios(self, registry):
            registry.add(TinyScenario)

    pm = KperfPluginManager(
        autoload=False, plugins=[("first", ThirdPartyPlugin()), ("second", Clash())]
    )
    with pytest.raises(PluginError, match="scenario 'tiny' is registered twice: by plugin 'first'"):
        pm.scenarios  # noqa: B018 - the registry is collected on first access


def test_command_clash_with_builtin_is_an_error() -> None:
    class Impostor:
        @hookimpl
        def kperf_register_commands(self, commands):
            commands.add(click.Command("local"))

    pm = KperfPluginManager(autoload=False, plugins=[("impostor", Impostor())])
    with pytest.raises(PluginError, match=r"'local-control-plane'.*'impostor'"):
        pm.commands  # noqa: B018


def test_implementation_may_take_no_arguments() -> None:
    calls = []

    class Lazy:
        @hookimpl
        def kperf_register_sinks(self):
            calls.append("called")

    pm = KperfPluginManager(autoload=False, plugins=[("lazy", Lazy())])
    assert "null" not in pm.sinks
    assert calls == ["called"]


def test_misspelled_hook_is_refused() -> None:
    class Typo:
        @hookimpl
        def kperf_register_request_type(self, registry):  # missing "s"
            pass

    with pytest.raises(PluginError, match="typo"):
        KperfPluginManager(autoload=False, plugins=[("typo", Typo())])


def test_registration_hook_as_wrapper_is_refused() -> None:
    class Wrapper:
        @hookimpl(wrapper=True)
        def kperf_register_sinks(self, registry):
            return (yield)

    pm = KperfPluginManager(autoload=False, plugins=[("wrapper", Wrapper())])
    with pytest.raises(PluginError, match="cannot be implemented as a wrapper"):
        pm.sinks  # noqa: B018


def test_failing_hook_names_the_plugin() -> None:
    class Broken:
        @hookimpl
        def kperf_register_request_types(self, registry):
            raise RuntimeError("boom")

    pm = KperfPluginManager(autoload=False, plugins=[("broken", Broken())])
    with pytest.raises(PluginError, match="plugin 'broken' failed in kperf_register_request_types"):
        pm.request_types  # noqa: B018


def test_failing_entry_point_import_names_the_plugin() -> None:
    pm = KperfPluginManager(autoload=False, builtins=False)
    ep = EntryPoint(name="shiny", value="kperf_no_such_module_xyz", group="kperf")
    with pytest.raises(PluginError, match=r"plugin 'shiny'.*failed to import: ModuleNotFoundError"):
        pm._load_entry_point(ep, (None, None), builtin=False)


def test_load_module_registers_and_refreshes_registries() -> None:
    module = types.ModuleType("kperf_inline_test_plugin")
    module.kperf_register_sinks = hookimpl(lambda registry: registry.add(NullSink))
    import sys

    sys.modules[module.__name__] = module
    try:
        pm = KperfPluginManager(autoload=False)
        assert "null" not in pm.sinks
        pm.load_module(module.__name__)
        assert pm.sinks["null"] is NullSink
    finally:
        del sys.modules[module.__name__]
    with pytest.raises(PluginError, match="'kperf_no_such_module_xyz' failed to import"):
        pm.load_module("kperf_no_such_module_xyz")


def test_same_plugin_name_twice_is_refused() -> None:
    with pytest.raises(PluginError, match="two plugins are named 'plugin-inventory'"):
        KperfPluginManager(autoload=False, plugins=[("plugin-inventory", ThirdPartyPlugin())])


def test_control_plane_contract_is_usable_by_third_parties(tmp_path: Path) -> None:
    class RemotePlane(ControlPlane):
        name = "remote"

        def up(self):
            return self.status()

        def down(self):
            pass

        def status(self):
            return ControlPlaneStatus(False, None, "https://example.invalid", {})

    class Plugin:
        @hookimpl
        def kperf_register_backends(self, backends):
            backends.control_planes.add(RemotePlane)

    pm = KperfPluginManager(autoload=False, plugins=[("remote", Plugin())])
    plane = pm.backends.control_planes["remote"](tmp_path)
    assert plane.state_dir == tmp_path
    assert plane.up().server == "https://example.invalid"
    assert sorted(pm.backends.control_planes.names()) == ["local", "remote"]


class BetterWatch(EchoRequest):
    name = "watch"


class WatchReplacement:
    @hookimpl
    def kperf_register_request_types(self, registry):
        registry.add(BetterWatch)


def test_blocked_builtin_is_not_loaded_and_can_be_replaced() -> None:
    with pytest.raises(PluginError, match="'watch'"):
        # Without blocking, a second `watch` clashes with the built-in one.
        KperfPluginManager(autoload=False, plugins=[("better", WatchReplacement())]).request_types[
            "watch"
        ]
    pm = KperfPluginManager(
        autoload=False, plugins=[("better", WatchReplacement())], blocked=["request-watch"]
    )
    assert pm.request_types["watch"] is BetterWatch
    assert "request-watch" not in {info.name for info in pm.plugins()}
    assert pm.blocked() == ["request-watch"]


def test_blocking_an_unknown_plugin_names_the_known_ones() -> None:
    with pytest.raises(PluginError) as excinfo:
        KperfPluginManager(autoload=False, blocked=["request-wach"])
    message = str(excinfo.value)
    assert message.startswith("cannot block 'request-wach': no such plugin")
    assert "request-watch" in message


def test_blocked_inline_plugin_is_skipped() -> None:
    pm = KperfPluginManager(
        autoload=False, plugins=[("third-party", ThirdPartyPlugin())], blocked=["third-party"]
    )
    assert "echo" not in pm.request_types.names()


def test_disable_takes_a_loaded_wrapper_out_of_the_run_and_lists_it_blocked() -> None:
    pm = KperfPluginManager(autoload=False)

    def wrappers() -> list[str]:
        return [impl.plugin_name for impl in pm.hook.kperf_run.get_hookimpls() if impl.wrapper]

    assert wrappers() == ["server-metrics"]
    pm.disable("server-metrics")  # what `kperf runner run --no-server-metrics` does
    assert wrappers() == []
    assert pm.blocked() == ["server-metrics"]
