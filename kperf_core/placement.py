"""Where runners and virtual-node controllers may run, as flags spell it: ``KEY=V1[,V2]`` node
affinity and ``PriorityLevel:Precedence`` flow control.

``kperf runnergroup run`` and ``runkperf bench``/``warmup`` take the same flags, so both parse
them here.
"""

from __future__ import annotations

import re

import attrs

from kperf_core.errors import ConfigError

DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
#: FlowSchema.spec.matchingPrecedence must lie in [1, 10000] (the apiserver's validation).
MAX_PRECEDENCE = 10000


@attrs.frozen
class FlowControl:
    priority_level: str
    matching_precedence: int


def parse_flowcontrol(value: str, flag: str = "--runner-flowcontrol") -> FlowControl:
    """``PriorityLevelName:MatchingPrecedence`` (upstream's default ``workload-low:1000``)."""
    name, sep, precedence = value.rpartition(":")
    if not sep or not precedence.isdigit() or not DNS_SUBDOMAIN.fullmatch(name):
        raise ConfigError(
            f"{flag} {value!r}: expected PriorityLevelName:MatchingPrecedence, "
            "e.g. workload-low:1000"
        )
    if not 1 <= int(precedence) <= MAX_PRECEDENCE:
        raise ConfigError(f"{flag} {value!r}: matching precedence must be in [1, {MAX_PRECEDENCE}]")
    return FlowControl(name, int(precedence))


def parse_affinity(values: tuple[str, ...], flag: str = "--affinity") -> dict[str, tuple[str, ...]]:
    """``KEY=V1[,V2]`` items → required node affinity (operator In, all keys ANDed)."""
    affinity: dict[str, tuple[str, ...]] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        allowed = tuple(v for v in rest.split(",") if v)
        if not sep or not LABEL_KEY.fullmatch(key) or not allowed:
            raise ConfigError(f"{flag} {value!r}: expected KEY=VALUE1[,VALUE2…]")
        affinity[key] = affinity.get(key, ()) + allowed
    return affinity
