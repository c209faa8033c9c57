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
