"""Splitting a JSON watch stream (one event per line) into complete events across chunks."""

from __future__ import annotations

from typing import Any


def split_events(state: dict[str, Any], chunk: bytes) -> list[bytes]:
    """Complete event lines of ``chunk``; a trailing partial line waits in ``state``."""
    buffered = state.pop("partial", b"") + chunk
    lines = buffered.split(b"\n")
    if lines[-1]:
        state["partial"] = lines[-1]
    return [line for line in lines[:-1] if line.strip()]


_TYPE_AT = b'{"type":"'
_RESOURCE_VERSION = b'"resourceVersion":"'
#: the event types read without decoding the object (ERROR is always decoded)
_PLAIN_TYPES = {b"ADDED": "ADDED", b"MODIFIED": "MODIFIED", b"DELETED": "DELETED"}
_BOOKMARK = b"BOOKMARK"


def event_summary(line: bytes, annotation: bytes) -> tuple[str, str | None, str | None] | None:
    """(type, the object's resourceVersion, the value of ``annotation``) of one watch event as
    kube-apiserver writes it (``{"type":"…","object":{…}}``), read without decoding the object;
    None when the line is not that plain (an ERROR, a second ``"resourceVersion":"`` or
    annotation key anywhere in it, another shape): then decode it.

    Why: a write reaches every watcher at once, and decoding each event whole (~40 µs on the
    benchmark machine) held the engine's one thread for 0.4 s per write at 10,000 sessions while
    the load beside them waited. A key written ``"resourceVersion":"`` occurs in JSON only as a
    key (inside a string its quotes are escaped), so one occurrence is the object's own.
    """
    if not line.startswith(_TYPE_AT):
        return None
    end = line.find(b'"', 9)
    raw_type = line[9:end]
    kind = "BOOKMARK" if raw_type == _BOOKMARK else _PLAIN_TYPES.get(raw_type)
    if kind is None or line.count(_RESOURCE_VERSION) != 1:
        return None
    at = line.index(_RESOURCE_VERSION) + len(_RESOURCE_VERSION)
    resource_version = line[at : line.index(b'"', at)].decode()
    key = b'"' + annotation + b'":"'
    found = line.count(key)
    if found > 1:
        return None
    value = None
    if found:
        at = line.index(key) + len(key)
        value = line[at : line.index(b'"', at)].decode()
    return kind, resource_version, value
