"""The commands rule authors and operators type."""

import shutil
from pathlib import Path

import pytest

from service.__main__ import main
from service.config import PROJECT_ROOT


def test_rules_check_passes_on_the_shipped_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check"]) == 0
    assert "is valid: 3 rules" in capsys.readouterr().out


def test_rules_check_names_the_problem_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    path = rules / "mscc-suspected/1.0.0.yaml"
    path.write_text(path.read_text().replace("indicator: critical", "indicator: urgent"))
    with pytest.raises(SystemExit) as caught:
        main(["rules", "check", "--rules", str(rules)])
    assert caught.value.code == 1
    assert "rules/mscc-suspected/1.0.0.yaml: card.indicator: Input should be" in capsys.readouterr().err


def test_rules_test_reports_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", "-k", "spinal-metastasis-pain"]) == 0
    assert "0 failed" in capsys.readouterr().out


def test_evaluate_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    bundle = PROJECT_ROOT / "fhir_examples/patients/02-mscc-lung-cancer-cauda-equina-icd10cm.json"
    assert main(["evaluate", str(bundle), "--now", "2026-11-20T09:00:00+00:00"]) == 0
    out = capsys.readouterr().out
    assert "FIRES  mscc-suspected@2.0.0" in out
    assert "card: [critical]" in out


def test_evaluate_refuses_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Patient"}')
    assert main(["evaluate", str(bad)]) == 2
    assert "must be a FHIR Bundle" in capsys.readouterr().err


def test_rules_diff_against_head_runs(capsys: pytest.CaptureFixture[str]) -> None:
    if not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    assert main(["rules", "diff"]) == 0
    assert "example patients change against HEAD" in capsys.readouterr().out


def test_serve_refuses_unsafe_configuration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MSCC_DEV_MODE", raising=False)
    with pytest.raises(SystemExit) as caught:
        main(["serve"])
    assert caught.value.code == 2
    assert "MSCC_ISSUERS_FILE" in capsys.readouterr().err
