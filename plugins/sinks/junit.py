"""The ``junit`` sink: one test case per SLO check, for CI systems that read JUnit XML.

A run without ``--slo`` has no checks: the file then holds an empty suite whose ``slo`` property
says so, rather than a made-up pass.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kperf_core import hookimpl
from kperf_core.report_model import Report
from kperf_core.sinks import Sink, write_text


def render_junit(report: Report) -> str:
    checks = report.slo.checks if report.slo is not None else ()
    failures = sum(1 for c in checks if not c.passed)
    elapsed = f"{report.aggregated.duration_seconds:.3f}"
    root = ET.Element(
        "testsuites", name="kperf", tests=str(len(checks)), failures=str(failures), time=elapsed
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name="kperf SLO",
        tests=str(len(checks)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=elapsed,
    )
    properties = ET.SubElement(suite, "properties")
    source = report.slo.source if report.slo is not None else "not evaluated (run with --slo)"
    ET.SubElement(properties, "property", name="slo", value=source)
    ET.SubElement(properties, "property", name="server", value=report.kperf.server)
    ET.SubElement(properties, "property", name="kperfVersion", value=report.kperf.version)
    for check in checks:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"slo.{check.scope}.{check.verb}",
            name=check.name,
            time=elapsed,
        )
        outcome = check.outcome()
        if check.passed:
            ET.SubElement(case, "system-out").text = outcome
        else:
            failure = ET.SubElement(case, "failure", message=outcome, type="SLOBreach")
            failure.text = "keys:\n" + "\n".join(check.keys)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


class JunitSink(Sink):
    name = "junit"

    def write(self, report: Report, destination: str | None) -> None:
        write_text(render_junit(report), destination)


@hookimpl
def kperf_register_sinks(registry):  # type: ignore[no-untyped-def]
    registry.add(JunitSink)
