"""The runner-group specs of the cases (upstream's files) and the tweaks every case applies:
upstream's ``--total``/``--duration``/``--content-type`` and kperf's ``--scale``."""

from __future__ import annotations

import copy
import math
from importlib.resources import files
from typing import Any

import click

from kperf_core.scenarios import BenchSettings, NodeShape


def load_spec(name: str) -> dict[str, Any]:
    """Upstream's runner-group spec ``specs/<name>.yaml`` as a plain document."""
    from ruamel.yaml import YAML

    text = files(__package__).joinpath("specs", f"{name}.yaml").read_text()
    return copy.deepcopy(YAML(typ="safe").load(text))  # type: ignore[no-any-return]


def tweak_spec(
    spec: dict[str, Any],
    settings: BenchSettings,
    *,
    total: int | None = None,
    duration: float | None = None,
    content_type: str | None = None,
) -> dict[str, Any]:
    """Upstream's tweaks of ``specs[0]`` — ``total`` (when given) else ``duration`` (when > 0),
    ``contentType`` — then ``--scale`` on the runner count and every phase's total or duration
    (rates stay: a smaller run is a shorter one, not a gentler one)."""
    first = spec["loadProfile"]["specs"][0]
    if total:
        first["total"] = total
        first.pop("duration", None)
    elif duration:
        first["duration"] = duration
        first.pop("total", None)
    if content_type:
        first["contentType"] = content_type
    spec["count"] = settings.scaled(spec["count"])
    for phase in spec["loadProfile"]["specs"]:
        if phase.get("total"):
            phase["total"] = settings.scaled(phase["total"])
        if phase.get("duration"):
            phase["duration"] = max(1, math.ceil(phase["duration"] * settings.scale))
    return spec


def runner_summary(spec: dict[str, Any]) -> str:
    """How the spec's runners load the server, for a report's description."""
    phases = [
        f"rate {p['rate']}/s, "
        + (f"{p['total']} requests" if p.get("total") else f"{p['duration']} s")
        + f", {p['conns']} conns, {p['client']} clients"
        for p in spec["loadProfile"]["specs"]
    ]
    return f"{spec['count']} runners, each: " + "; then ".join(phases)


#: upstream's "commonFlags": the virtual nodes' shape and the runners' content type
COMMON_OPTIONS: tuple[click.Parameter, ...] = (
    click.Option(["--cpu"], type=click.IntRange(min=1), default=32, show_default=True,
                 help="CPUs of each virtual node."),
    click.Option(["--memory"], type=click.IntRange(min=1), default=96, show_default=True,
                 help="GiB of memory of each virtual node."),
    click.Option(["--max-pods"], type=click.IntRange(min=1), default=110, show_default=True,
                 help="Pods each virtual node takes."),
    click.Option(["--content-type"], type=click.Choice(["json", "protobuf"]), default="json",
                 show_default=True, help="Content type the runners ask for."),
)  # fmt: skip


def node_shape(options: dict[str, Any]) -> NodeShape:
    return NodeShape(cpu=options["cpu"], memory_gib=options["memory"], max_pods=options["max_pods"])


def total_option(default: int, help_text: str) -> click.Option:
    return click.Option(
        ["--total"], type=click.IntRange(min=1), default=default, show_default=True, help=help_text
    )
