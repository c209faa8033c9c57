"""Where a finished report goes: the sink contract, and delivery to several sinks at once.

Commands that report take ``--sink NAME[:DEST]`` (repeatable). Delivery is as-much-as-possible: a
sink that fails is one line on stderr and the others still write, so one unwritable path never
costs the run's data. Without any ``--sink``, the JSON report goes to stdout (upstream's
behaviour).
"""

from __future__ import annotations

import abc
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import attrs

from kperf_core.errors import ConfigError

if TYPE_CHECKING:
    from kperf_core.registry import Registry
    from kperf_core.report_model import Report

#: The sink a report goes to when none is named.
DEFAULT_SINK = "json"


class Sink(abc.ABC):
    """Writes a finished report — every section, kperf's facts and SLO verdicts included."""

    #: The name users select, e.g. ``--sink csv:out.csv``.
    name: ClassVar[str]
    #: Whether ``--sink NAME`` without a destination is allowed (the sink then writes to stdout).
    stdout_default: ClassVar[bool] = True

    @abc.abstractmethod
    def write(self, report: Report, destination: str | None) -> None:
        """Write ``report`` to ``destination`` (a path or URL; None: the sink's default, stdout).

        Raise :class:`SinkError` with a message for the user when the destination refuses.
        """

    def write_against(self, report: Report, base: Baseline, destination: str | None) -> None:
        """Write ``report`` shown against ``base`` (``kperf report html RUN BASE``). Sinks that
        can show a comparison override this; the others refuse with a :class:`SinkError`."""
        raise SinkError(f"the {self.name} sink cannot show a report against a base run")


@attrs.frozen
class Baseline:
    """The run a report is shown against, and the comparison's budget."""

    report: Report
    #: how the base is named to the reader (its file)
    name: str
    #: allowed relative worsening before a significant change counts as a regression
    budget: float


class SinkError(ConfigError):
    """A sink could not write its destination (the other sinks still wrote theirs)."""


@attrs.frozen
class SinkTarget:
    """One ``--sink NAME[:DEST]``."""

    name: str
    destination: str | None

    def __str__(self) -> str:
        return f"{self.name}:{self.destination}" if self.destination else self.name


def parse_targets(
    specs: Iterable[str], registry: Registry[type[Sink]], result: Path | None = None
) -> list[SinkTarget]:
    """Parse ``--sink`` values (and ``--result FILE``, upstream's spelling of ``json:FILE``).

    Checked before a run starts, so that a misspelt sink never costs a measurement.
    """
    targets = [
        SinkTarget(name, dest or None) for name, _, dest in (spec.partition(":") for spec in specs)
    ]
    if result is not None:
        targets.append(SinkTarget(DEFAULT_SINK, str(result)))
    if not targets:
        targets.append(SinkTarget(DEFAULT_SINK, None))
    known = ", ".join(registry.names()) or "(none loaded)"
    for target in targets:
        sink = registry.get(target.name)
        if sink is None:
            raise ConfigError(f"--sink {target}: unknown sink {target.name!r} (known: {known})")
        if target.destination is None and not sink.stdout_default:
            raise ConfigError(f"--sink {target}: the {target.name} sink needs a destination")
    to_stdout = [str(t) for t in targets if t.destination is None]
    if len(to_stdout) > 1:
        raise ConfigError(
            f"--sink {' and '.join(to_stdout)}: only one sink may write to stdout; "
            "give the others a destination (NAME:FILE)"
        )
    return targets


def deliver(
    report: Report, targets: Sequence[SinkTarget], registry: Registry[type[Sink]]
) -> list[str]:
    """Write ``report`` to every target; return one line per sink that failed.

    When a sink failed, no JSON report was written and stdout is free, the JSON report goes to
    stdout, so that the run's data survives whatever destination refused it.
    """
    failures: list[str] = []
    json_written = False
    for target in targets:
        sink = registry.get(target.name)
        try:
            if sink is None:
                raise SinkError(f"unknown sink (known: {', '.join(registry.names())})")
            sink().write(report, target.destination)
        except SinkError as exc:
            failures.append(f"sink {target}: {exc}")
        else:
            json_written = json_written or target.name == DEFAULT_SINK
    stdout_free = all(t.destination is not None for t in targets)
    if failures and not json_written and stdout_free:
        from kperf_core.report_model import render_json

        sys.stdout.write(render_json(report))
        sys.stdout.flush()
        failures.append("the JSON report went to stdout instead, so nothing measured is lost")
    return failures


def write_text(text: str, destination: str | None) -> None:
    """Write a sink's rendering to a file (parents created) or, for None, to stdout."""
    if destination is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(destination)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    except OSError as exc:
        raise SinkError(
            f"cannot create the directory {exc.filename or path.parent}: {exc.strerror or exc}"
        ) from None
    try:
        path.write_text(text)
    except OSError as exc:
        raise SinkError(f"cannot write {path}: {exc.strerror or exc}") from None
