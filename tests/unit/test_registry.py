from __future__ import annotations

import pytest

from kperf_core.errors import PluginError
from kperf_core.registry import Registry


class StaleThing:
    name = "staleList"


class OtherStaleThing:
    name = "staleList"


def test_entries_keep_registration_order_and_origin() -> None:
    registry: Registry[type] = Registry("request type")
    registry.for_plugin("alpha").add(StaleThing)
    registry.for_plugin("beta").add(int, name="quorumList")
    assert registry.names() == ["staleList", "quorumList"]
    assert registry["quorumList"] is int
    assert [e.origin for e in registry.entries()] == ["alpha", "beta"]
    assert "staleList" in registry and "watch" not in registry
    assert registry.get("watch") is None


def test_duplicate_name_names_both_plugins_and_classes() -> None:
    registry: Registry[type] = Registry("request type")
    registry.for_plugin("alpha").add(StaleThing)
    with pytest.raises(PluginError) as excinfo:
        registry.for_plugin("beta").add(OtherStaleThing)
    message = str(excinfo.value)
    assert "request type 'staleList' is registered twice" in message
    assert "'alpha'" in message and "'beta'" in message
    assert "StaleThing" in message and "OtherStaleThing" in message
    assert registry["staleList"] is StaleThing  # the first registration is kept, not replaced


def test_item_without_name_is_refused_with_the_plugin_named() -> None:
    registry: Registry[object] = Registry("sink")
    with pytest.raises(PluginError, match="plugin 'gamma' registered a sink without a name"):
        registry.for_plugin("gamma").add(object())
