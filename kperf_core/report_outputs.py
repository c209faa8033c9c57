"""What a reporting command does with its finished report: check it, deliver it, exit accordingly.

Commands call :func:`prepare_outputs` before they measure anything (so a misspelt sink or a bad
thresholds file costs no run), :meth:`ReportOutputs.deliver` with the finished document, and
:meth:`ReportOutputs.finish` last, which raises the exit status: an SLO breach
(:class:`~kperf_core.checks.VerdictFailed`) before sink failures, since every sink's failure was
already reported on its own line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kperf_core.checks import ReportCheck, VerdictFailed, slo_failures
from kperf_core.errors import ConfigError
from kperf_core.report_model import Report, typed_run_report
from kperf_core.sinks import SinkError, SinkTarget, deliver, parse_targets

if TYPE_CHECKING:
    from kperf_core.plugin_manager import KperfPluginManager

SLO_CHECK = "slo"

#: ``--result``, ``--sink`` and ``--slo`` as every reporting command spells them.
RESULT_OPTION = click.option(
    "--result",
    "result_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the JSON report here instead of stdout (same as --sink json:FILE).",
)
SINK_OPTION = click.option(
    "--sink",
    "sinks",
    multiple=True,
    metavar="NAME[:DEST]",
    help="Deliver the report to a sink: json, csv, junit, html, prometheus (a file, or a "
    "Pushgateway http:// URL), or a plugin's. Repeatable; no DEST: stdout. Default: json to "
    "stdout.",
)
SLO_OPTION = click.option(
    "--slo",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[FILE]",
    help="Hold the run to the Kubernetes API-call latency SLOs (or FILE's thresholds), on the "
    "client's data and the server's; a breach exits 6 after every sink has written.",
)


class ReportOutputs:
    """The sinks and checks one command invocation reports through."""

    def __init__(
        self, pm: KperfPluginManager, targets: list[SinkTarget], checks: list[ReportCheck]
    ) -> None:
        self._pm = pm
        self.targets = targets
        self.checks = checks
        self.failures: list[str] = []
        self.report: Report | None = None

    def deliver(self, report: Report | Mapping[str, Any]) -> Report:
        """Run the checks on the report (a document is typed first), write every sink; report
        problems on stderr."""
        if not isinstance(report, Report):
            report = typed_run_report(report)
        for check in self.checks:
            report = check.evaluate(report)
        self.failures = deliver(report, self.targets, self._pm.sinks)
        for line in self.failures:
            print(line, file=sys.stderr)
        for side, verdicts in (("", report.slo), ("server's data, ", report.server_slo)):
            if verdicts is None:
                continue
            failed = verdicts.failures
            print(
                f"SLO ({side}{verdicts.source}): {len(verdicts.checks) - len(failed)} of "
                f"{len(verdicts.checks)} classes met their threshold",
                file=sys.stderr,
            )
            for breach in failed:
                print(f"  BREACH {breach.name}: {breach.outcome()}", file=sys.stderr)
        self.report = report
        return report

    def finish(self) -> None:
        """Raise the command's outcome: a breach, then failed sinks; return when all is well."""
        if self.report is not None:
            failed = slo_failures(self.report)
            if failed:
                raise VerdictFailed("SLO breached: " + "; ".join(failed))
        broken = sum(1 for line in self.failures if line.startswith("sink "))
        if broken:
            raise SinkError(f"{broken} of {len(self.targets)} sinks failed (see above)")


def prepare_outputs(
    pm: KperfPluginManager, sinks: Iterable[str], result: Path | None, slo: str | None
) -> ReportOutputs:
    """Check ``--sink``/``--result``/``--slo`` before a run: ``slo`` is None (not asked), ``""``
    (the built-in SLOs) or a thresholds file."""
    targets = parse_targets(sinks, pm.sinks, result)
    checks: list[ReportCheck] = []
    if slo is not None:
        check = pm.checks.get(SLO_CHECK)
        if check is None:
            raise ConfigError(f"--slo: no {SLO_CHECK!r} check is loaded (blocked with -p no:slo?)")
        checks.append(check(slo or None))
    return ReportOutputs(pm, targets, checks)


def output_options(f: Any) -> Any:
    """``--result``, ``--sink`` and ``--slo`` of a reporting command (parameters ``result_path``,
    ``sinks``, ``slo``: what :func:`prepare_outputs` takes)."""
    return RESULT_OPTION(SINK_OPTION(SLO_OPTION(f)))
