"""What a reporting command does with its finished report: check it, deliver it, exit accordingly.

Commands call :func:`prepare_outputs` before they measure anything (so a misspelt sink or a bad
thresholds file costs no run), :meth:`ReportOutputs.deliver` with the finished document, and
:meth:`ReportOutputs.finish` last, which raises the exit status: an SLO breach
(:class:`~kperf_core.checks.VerdictFailed`) before sink failures, since every sink's failure was
already reported on its own line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kperf_core.checks import ReportCheck, VerdictFailed, slo_failures
from kperf_core.errors import ConfigError
from kperf_core.report_model import Report, ReportError, report_from_document
from kperf_core.sinks import SinkError, SinkTarget, deliver, parse_targets

if TYPE_CHECKING:
    from kperf_core.plugin_manager import KperfPluginManager

SLO_CHECK = "slo"


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

    def deliver(self, document: Mapping[str, Any]) -> Report:
        """Type the document, run the checks, write every sink; report problems on stderr."""
        try:
            report = report_from_document(document, "the run's report")
        except ReportError as exc:
            # A bug between the engine and the model must not cost the measurements.
            sys.stdout.write(json.dumps(document, indent=2) + "\n")
            raise ReportError(f"{exc} (a kperf bug; the untyped report went to stdout)") from None
        for check in self.checks:
            report = check.evaluate(report)
        self.failures = deliver(report, self.targets, self._pm.sinks)
        for line in self.failures:
            print(line, file=sys.stderr)
        if report.slo is not None:
            failed = slo_failures(report)
            print(
                f"SLO ({report.slo.source}): {len(report.slo.checks) - len(failed)} of "
                f"{len(report.slo.checks)} classes met their threshold",
                file=sys.stderr,
            )
            for line in failed:
                print(f"  BREACH {line}", file=sys.stderr)
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
