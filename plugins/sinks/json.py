"""The ``json`` sink: the report document exactly as ``kperf runner run`` has always written it."""

from __future__ import annotations

from kperf_core import hookimpl
from kperf_core.report_model import Report, render_json
from kperf_core.sinks import Sink, write_text


class JsonSink(Sink):
    name = "json"

    def write(self, report: Report, destination: str | None) -> None:
        write_text(render_json(report), destination)


@hookimpl
def kperf_register_sinks(registry):  # type: ignore[no-untyped-def]
    registry.add(JsonSink)
