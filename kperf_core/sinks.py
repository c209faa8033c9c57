"""The contract a result sink implements: where a finished report goes (JSON, CSV, HTML, …)."""

from __future__ import annotations

import abc
from typing import Any, ClassVar


class Sink(abc.ABC):
    """Writes a report document — upstream-compatible JSON keys (``perSpecResults``,
    ``aggregated``, …) plus kperf's own additions — to a destination."""

    #: The name users select, e.g. ``--sink json``.
    name: ClassVar[str]

    @abc.abstractmethod
    def write(self, report: dict[str, Any], destination: str | None) -> None:
        """Write ``report``; ``destination`` is a path, or None for the sink's default."""
