"""What a reporting command does after a run: checks, sinks, and the exit status they decide."""

from __future__ import annotations

import json

import attrs
import pytest
from report_factory import make_report

from kperf_core import hookimpl
from kperf_core.checks import ReportCheck, VerdictFailed
from kperf_core.errors import ConfigError
from kperf_core.plugin_manager import KperfPluginManager
from kperf_core.report_model import Report, SloVerdicts, report_to_document
from kperf_core.report_outputs import prepare_outputs
from kperf_core.sinks import SinkError

SLOW = {"LIST /api/v1/pods": [45.0] * 10}  # p99 45 s: beyond every built-in threshold
FAST = {"LIST /api/v1/pods": [0.01] * 10}


def test_a_breach_exits_with_its_own_code_after_every_sink_wrote(tmp_path, capsys) -> None:
    pm = KperfPluginManager(autoload=False)
    outputs = prepare_outputs(pm, [f"junit:{tmp_path}/r.xml"], tmp_path / "r.json", "")
    report = outputs.deliver(report_to_document(make_report(SLOW)))
    assert report.slo is not None and not report.slo.passed
    assert json.loads((tmp_path / "r.json").read_text())["slo"]["passed"] is False
    assert "<failure" in (tmp_path / "r.xml").read_text()
    with pytest.raises(VerdictFailed) as caught:
        outputs.finish()
    assert caught.value.exit_code == 6
    value = report.slo.checks[0].value_seconds
    assert str(caught.value) == (
        f"SLO breached: LIST pods (cluster scope): p99 {value:.6g} s > 30 s (10 calls)"
    )
    stderr = capsys.readouterr().err
    assert "SLO (builtin): 0 of 1 classes met their threshold" in stderr


def test_a_failed_sink_decides_the_exit_when_the_slo_holds(tmp_path) -> None:
    pm = KperfPluginManager(autoload=False)
    blocker = tmp_path / "f"
    blocker.write_text("")
    outputs = prepare_outputs(pm, [f"csv:{blocker}/x.csv"], tmp_path / "r.json", "")
    outputs.deliver(report_to_document(make_report(FAST)))
    with pytest.raises(SinkError, match=r"^1 of 2 sinks failed \(see above\)$"):
        outputs.finish()
    assert (tmp_path / "r.json").exists()


def test_without_slo_no_verdicts_and_a_clean_finish(tmp_path) -> None:
    outputs = prepare_outputs(KperfPluginManager(autoload=False), [], tmp_path / "r.json", None)
    assert outputs.deliver(report_to_document(make_report(SLOW))).slo is None
    outputs.finish()


def test_slo_with_the_check_blocked_is_one_clear_error() -> None:
    pm = KperfPluginManager(autoload=False, blocked=("slo",))
    with pytest.raises(ConfigError, match=r"--slo: no 'slo' check is loaded"):
        prepare_outputs(pm, [], None, "")


def test_a_third_party_check_can_stand_in_for_the_builtin_slo(tmp_path) -> None:
    class Strict(ReportCheck):
        name = "slo"

        def evaluate(self, report: Report) -> Report:
            return attrs.evolve(report, slo=SloVerdicts(f"strict:{self.source}", True, ()))

    class Plugin:
        @hookimpl
        def kperf_register_checks(self, registry):
            registry.add(Strict)

    pm = KperfPluginManager(autoload=False, blocked=("slo",), plugins=[("strict", Plugin())])
    outputs = prepare_outputs(pm, [], tmp_path / "r.json", "mine.yaml")
    report = outputs.deliver(report_to_document(make_report(SLOW)))
    assert report.slo == SloVerdicts("strict:mine.yaml", True, ())
    outputs.finish()


def test_a_document_the_model_refuses_still_reaches_stdout(tmp_path, capsys) -> None:
    document = report_to_document(make_report(FAST))
    document["aggregated"]["requests"]["sent"] = "many"
    outputs = prepare_outputs(KperfPluginManager(autoload=False), [], tmp_path / "r.json", None)
    with pytest.raises(ConfigError) as caught:
        outputs.deliver(document)
    assert str(caught.value) == (
        "the run's report: aggregated.requests.sent: must be an integer (got 'many') "
        "(a kperf bug; the untyped report went to stdout)"
    )
    assert json.loads(capsys.readouterr().out) == document
