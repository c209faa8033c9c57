"""``kperf report``: work with report files after a run (``compare`` two runs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from kperf_core import hookimpl
from kperf_core.commands import CommandRegistry

DEFAULT_BUDGET = "10%"
#: the sink ``kperf report html`` renders through (a plugin may replace it under this name)
HTML_SINK = "html"


def parse_budget(text: str) -> float:
    """``"10%"`` or ``"10"`` → 0.10: how much worse a figure may get before it is a regression."""
    from kperf_core.errors import ConfigError

    number = text.strip().removesuffix("%")
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1000 or value != value:
        raise ConfigError(f"--budget {text}: must be a percentage like 10% (0% to 999%)")
    return value / 100


@click.group("report")
def report_group() -> None:
    """Read, compare and render report files."""


@report_group.command("compare")
@click.argument("base", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--budget",
    default=DEFAULT_BUDGET,
    show_default=True,
    help="Allowed worsening of p50, p99, throughput and error rate before a significant change "
    "counts as a regression.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="A table for people or JSON for tools, on stdout.",
)
def compare_command(base: Path, new: Path, budget: str, output: str) -> None:
    """Compare NEW against BASE per key and overall; exit 6 on a regression beyond the budget."""
    from kperf_core.checks import VerdictFailed
    from kperf_core.comparison import compare
    from kperf_core.report_model import load_report

    allowed = parse_budget(budget)
    result = compare(load_report(base), load_report(new), allowed)
    if output == "json":
        import attrs

        document: dict[str, Any] = {
            "base": str(base),
            "new": str(new),
            **attrs.asdict(result),
            "regressed": bool(result.regressions),
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        for line in _table(result):
            click.echo(line)
    if result.regressions:
        raise VerdictFailed(
            f"{new} regressed beyond the {budget} budget against {base}: "
            + "; ".join(f"{k.key}: {', '.join(k.reasons())}" for k in result.regressions)
        )


@report_group.command("html")
@click.argument("run", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("base", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the page here (default: RUN with .html instead of .json).",
)
@click.option(
    "--budget",
    default=DEFAULT_BUDGET,
    show_default=True,
    help="With BASE: the budget of the comparison shown.",
)
def html_command(run: Path, base: Path | None, output: Path | None, budget: str) -> None:
    """Render RUN as one self-contained HTML page with plots (compared with BASE if given)."""
    from kperf_core.cli import plugin_manager
    from kperf_core.errors import ConfigError
    from kperf_core.report_model import load_report
    from kperf_core.sinks import Baseline

    sink = plugin_manager().sinks.get(HTML_SINK)
    if sink is None:
        raise ConfigError(f"no {HTML_SINK!r} sink is loaded (blocked with -p no:sink-html?)")
    allowed = parse_budget(budget)
    report = load_report(run)
    target = str(output or run.with_suffix(".html"))
    if base is None:
        sink().write(report, target)
    else:
        sink().write_against(report, Baseline(load_report(base), str(base), allowed), target)
    click.echo(target)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.2f}"


def _delta(value: float | None) -> str:
    return "" if value is None else f"{value:+.1%}"


def _table(result: Any) -> list[str]:
    header = ("key", "p50 ms", "Δ", "p99 ms", "Δ", "req/s", "Δ", "errors", "verdict")
    rows = [header]
    for k in (*result.keys, *result.server):
        if k.present_in != "both":
            rows.append((k.key, "", "", "", "", "", "", "", f"only in {k.present_in}"))
            continue
        errors = "-" if k.error_rate.new is None else f"{k.error_rate.new:.2%}"
        rows.append(
            (
                k.key,
                f"{_ms(k.p50.base)}→{_ms(k.p50.new)}",
                _delta(k.p50.relative),
                f"{_ms(k.p99.base)}→{_ms(k.p99.new)}",
                _delta(k.p99.relative),
                "-" if k.throughput.new is None else f"{k.throughput.new:.1f}",
                _delta(k.throughput.relative),
                errors,
                "REGRESSED: " + ", ".join(k.reasons()) if k.regressed else "ok",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    ]


@hookimpl
def kperf_register_commands(commands: CommandRegistry) -> None:
    commands.add(report_group)
