"""Duration flags: Go's time.ParseDuration forms and plain seconds, one line for a bad value."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from kperf_core.durations import Duration, parse_duration
from kperf_core.report import go_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("2h45m0.5s", 9900.5),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("250us", 0.00025),
        ("250µs", 0.00025),  # U+00B5
        ("250μs", 0.00025),  # U+03BC
        ("7ns", 7e-9),
        ("0", 0.0),
        ("0s", 0.0),
        ("10", 10.0),  # plain seconds, as kperf's flags took them
        ("2.5", 2.5),
        (" 3s ", 3.0),
    ],
)
def test_go_durations_and_plain_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "s", "5x", "1m30", "1d", "-5s", "+1s", "5 s", "1h-1m", ".", "1..5s"]
)
def test_what_go_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [0.25, 1, 10, 90, 3600, 5400.5])
def test_what_go_prints_parses_back(seconds: float) -> None:
    assert parse_duration(go_duration(seconds)) == pytest.approx(seconds)


def test_a_bad_value_is_one_line_naming_the_flag() -> None:
    @click.command()
    @click.option("--interval", type=Duration(0, min_open=True), default="10s")
    def command(interval: float) -> None:
        click.echo(repr(interval))

    runner = CliRunner()
    assert runner.invoke(command, []).output == "10.0\n"
    assert runner.invoke(command, ["--interval", "1m30s"]).output == "90.0\n"
    for bad, why in (("5x", "is not a duration"), ("0s", "must be > 0 s")):
        result = runner.invoke(command, ["--interval", bad])
        assert result.exit_code == 2
        (line,) = [x for x in result.output.splitlines() if x.startswith("Error")]
        assert f"Invalid value for '--interval': '{bad}' {why}" in line
