"""Durations on the command line as upstream writes them: Go's ``time.ParseDuration`` ("5s",
"1m30s", "500ms", "1h") — and plain seconds ("10", "2.5"), which kperf's own flags always took.

One parser for every duration flag (``bench``'s ``--interval``/``--duration``/``--wait``,
``rg result --timeout``), so "1m30s" means the same everywhere and a bad value is one line
naming the flag. (Printing one as Go does is :func:`kperf_core.report.go_duration`.)
"""

from __future__ import annotations

import math
import re
from typing import Any

import click

#: Go's units (``µ`` as U+00B5 and U+03BC both) in seconds
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
#: one ``<number><unit>`` term: Go allows "1.", ".5" but not "." alone
_TERM = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_PLAIN = re.compile(r"\d+\.?\d*|\.\d+")


def parse_duration(text: str) -> float:
    """Seconds of ``text``: a Go duration ("1h2m3.5s", "-" not allowed) or plain seconds.

    :raises ValueError: naming what is wrong, for the caller to put after the flag's name.
    """
    value = text.strip()
    if _PLAIN.fullmatch(value):
        return float(value)
    if value.startswith(("-", "+")):
        raise ValueError(f"{text!r} is negative or signed; a duration here is >= 0")
    position, seconds = 0, 0.0
    for term in _TERM.finditer(value):
        if term.start() != position:
            break
        seconds += float(term.group(1)) * _UNITS[term.group(2)]
        position = term.end()
    if position != len(value) or not value:
        raise ValueError(
            f"{text!r} is not a duration (seconds, or Go's form: 500ms, 5s, 1m30s, 2h; "
            f"units ns, us, ms, s, m, h)"
        )
    if not math.isfinite(seconds):
        raise ValueError(f"{text!r} is too long a duration")
    return seconds


# click >= 8.2 types ParamType as generic; 8.1 (still allowed) cannot be subscripted at run time
class Duration(click.ParamType):  # type: ignore[type-arg]
    """A click type of :func:`parse_duration`, in seconds, at least ``minimum`` (exclusive with
    ``min_open``)."""

    name = "duration"

    def __init__(self, minimum: float = 0.0, *, min_open: bool = False) -> None:
        self.minimum = minimum
        self.min_open = min_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, (int, float)):
            seconds = float(value)
        else:
            try:
                seconds = parse_duration(str(value))
            except ValueError as exc:
                self.fail(str(exc), param, ctx)
        if seconds < self.minimum or (self.min_open and seconds == self.minimum):
            bound = ">" if self.min_open else ">="
            self.fail(f"{value!r} must be {bound} {self.minimum:g} s", param, ctx)
        return seconds

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "DURATION"
