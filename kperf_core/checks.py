"""The contract a report check implements: verdicts a finished report is held to (``--slo``).

A check is prepared before the run (so a bad thresholds file costs no measurement), evaluates the
finished report, and returns it with its verdicts recorded under a key of its own. A failed verdict
is not an error of the run: every sink still writes the report, then the command exits with
:attr:`VerdictFailed.exit_code`, which no other failure uses, so CI can tell "too slow" from
"broken".
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, ClassVar

from kperf_core.errors import KperfError

if TYPE_CHECKING:
    from kperf_core.report_model import Report


class ReportCheck(abc.ABC):
    """Holds a report to thresholds; registered through ``kperf_register_checks``."""

    #: The name commands look the check up by (``slo`` for ``--slo``).
    name: ClassVar[str]

    def __init__(self, source: str | None) -> None:
        """``source``: the user's thresholds file, or None for the check's built-in thresholds.

        Raise :class:`~kperf_core.errors.ConfigError` here for a bad file.
        """
        self.source = source

    @abc.abstractmethod
    def evaluate(self, report: Report) -> Report:
        """Return ``report`` with this check's verdicts recorded in it."""


class VerdictFailed(KperfError):
    """A report failed a check the user asked for (an SLO breach, a regression beyond budget)."""

    exit_code = 6


def slo_failures(report: Report) -> list[str]:
    """One line per failed SLO class of ``report`` (none when no SLO was evaluated)."""
    if report.slo is None:
        return []
    return [f"{check.name}: {check.outcome()}" for check in report.slo.failures]
