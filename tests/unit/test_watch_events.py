"""Reading watch events without decoding them whole: the same facts as decoding, or none."""

from __future__ import annotations

import json

import pytest
from kperf_plugins.requests.watch_events import event_summary, split_events

from kperf_core.request_types import WRITTEN_AT

KEY = WRITTEN_AT.encode()


def _event(kind: str, obj: dict) -> bytes:
    # as kube-apiserver writes them: compact, "type" first
    return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode()


def _config_map(rv: str, annotations: dict[str, str] | None = None, data: dict | None = None):
    metadata = {"name": "cm", "namespace": "ns", "uid": "u", "resourceVersion": rv}
    if annotations:
        metadata["annotations"] = annotations
    metadata["managedFields"] = [{"fieldsV1": {"f:metadata": {f"f:{WRITTEN_AT}": {}}}}]
    return {"kind": "ConfigMap", "apiVersion": "v1", "metadata": metadata, "data": data or {}}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (_event("MODIFIED", _config_map("17", {WRITTEN_AT: "1.5"})), ("MODIFIED", "17", "1.5")),
        (_event("ADDED", _config_map("18")), ("ADDED", "18", None)),
        (_event("DELETED", _config_map("19", {"a": "b"})), ("DELETED", "19", None)),
        (
            _event("BOOKMARK", {"kind": "ConfigMap", "metadata": {"resourceVersion": "20"}}),
            ("BOOKMARK", "20", None),
        ),
        # a value that quotes the keys is escaped in JSON: still the object's own figures
        (
            _event("MODIFIED", _config_map("21", data={"x": '"resourceVersion":"9"'})),
            ("MODIFIED", "21", None),
        ),
    ],
)
def test_plain_events_give_what_decoding_gives(line: bytes, expected: tuple) -> None:
    assert event_summary(line, KEY) == expected
    event = json.loads(line)
    metadata = event["object"]["metadata"]
    decoded = (
        event["type"],
        metadata["resourceVersion"],
        (metadata.get("annotations") or {}).get(WRITTEN_AT),
    )
    assert decoded == expected


@pytest.mark.parametrize(
    "line",
    [
        _event("ERROR", {"kind": "Status", "code": 410}),
        # the key twice (an annotation named like it): only decoding tells which is the object's
        _event("MODIFIED", _config_map("22", {"resourceVersion": "1"})),
        _event("MODIFIED", {"metadata": {}, "items": [_config_map("1"), _config_map("2")]}),
        json.dumps({"object": _config_map("23"), "type": "ADDED"}).encode(),  # another shape
        _event("ADDED", {"kind": "ConfigMap", "metadata": {}}),  # no resourceVersion
    ],
)
def test_events_that_are_not_plain_are_left_to_decoding(line: bytes) -> None:
    assert event_summary(line, KEY) is None


def test_events_split_across_chunks_are_joined() -> None:
    state: dict = {}
    assert split_events(state, b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert split_events(state, b":2}\n") == [b'{"b":2}']
    assert state == {}
