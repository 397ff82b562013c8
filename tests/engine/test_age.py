"""An age criterion reads Patient.birthDate from the prefetch (or a fetch): "over 50" is a rule authors can write."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.engine.evaluation import evaluate_record
from service.engine.loader import load_ruleset
from service.errors import RuleSetInvalid
from service.fhir.record import build_record
from tests.helpers import CANCER, NOW, PAIN, copy_rules, hook_request, new_version, next_minor, obs

OVER_50 = (
    "  over_50:\n    description: Aged over 50\n    age: {above: 50}\n"
    "  suspected_over_50:\n    description: Suspected MSCC over 50\n    all_of: [suspected_mscc, over_50]\n"
)


def age_rules(tmp_path: Path, with_prefetch: bool = True) -> Path:
    """A draft of mscc-suspected (`OVER_50_DRAFT`) that also needs the patient to be over 50 (to show the criterion,
    not advice)."""
    rules = copy_rules(tmp_path)

    def over_50(text: str) -> str:
        text = text.replace("criteria:\n", "criteria:\n" + OVER_50, 1)
        return text.replace("\nwhen: suspected_mscc", "\nwhen: suspected_over_50", 1)

    new_version(rules, "mscc-suspected", "draft", over_50)
    if not with_prefetch:  # the rule set prefetches the Patient (for onsetAge): take it away
        ruleset = rules / "ruleset.yaml"
        text = re.sub(r"(?m)^ *patient: Patient/\{\{context\.patientId\}\}\n", "", ruleset.read_text())
        text = text.replace("[patient, ", "[")
        ruleset.write_text(text)
    return rules


def patient(birth: str | None) -> dict:
    return {"resourceType": "Patient", "id": "p", **({"birthDate": birth} if birth else {})}


def fired(ruleset, resources) -> bool:
    rule = ruleset.version("mscc-suspected", next_minor("mscc-suspected"))
    return evaluate_record(ruleset, build_record("p", resources), NOW, rules=[rule]).decisions[0].fired


SIGNS = [CANCER, PAIN, obs("weak", "26544005", "2026-11-19", True)]


def test_the_rule_file_uses_the_criterion(tmp_path: Path) -> None:
    assert (
        "when: suspected_over_50"
        in (age_rules(tmp_path) / f"mscc-suspected/{next_minor('mscc-suspected')}.yaml").read_text()
    )


@pytest.mark.parametrize(
    ("birth", "fires"),
    [
        ("1960-05-01", True),  # 66
        ("1976-11-21", False),  # 49 (50 tomorrow)
        ("1976-11-20", False),  # 50 today: not over 50
        ("1975-11-21", False),  # still 50
        ("1975-11-20", True),  # 51 today
        ("1975", True),  # 50 or 51: read on the side that fires
        ("1976", False),  # 49 or 50: never over 50
        (None, False),  # no birth date: cannot hold
    ],
)
def test_age_is_read_from_the_birth_date(tmp_path: Path, birth, fires: bool) -> None:
    ruleset = load_ruleset(age_rules(tmp_path))
    assert fired(ruleset, [*SIGNS, patient(birth)]) == fires


def test_the_age_is_evidence_on_the_card(tmp_path: Path) -> None:
    ruleset = load_ruleset(age_rules(tmp_path))
    rule = ruleset.version("mscc-suspected", next_minor("mscc-suspected"))
    evaluation = evaluate_record(ruleset, build_record("p", [*SIGNS, patient("1960-05-01")]), NOW, rules=[rule])
    assert "Age 66 (born 1960-05-01)" in [f.label for f in evaluation.decisions[0].evidence]


def test_an_age_criterion_needs_a_patient_prefetch(tmp_path: Path) -> None:
    with pytest.raises(RuleSetInvalid, match=r"criteria\.over_50\.age: reads Patient\.birthDate, but service"):
        load_ruleset(age_rules(tmp_path, with_prefetch=False))


def test_the_patient_comes_from_the_prefetch_of_a_hook_call(make_app, tmp_path: Path) -> None:
    rules = age_rules(tmp_path)
    body = hook_request("01-mscc-breast-cancer-leg-weakness")
    body["prefetch"]["patient"] = {"resourceType": "Patient", "id": "p01", "birthDate": "1958-02-03"}
    with TestClient(
        make_app(rules_dir=rules, shadow_drafts=True, clock=lambda: datetime(2026, 11, 20, tzinfo=UTC))
    ) as c:
        answer = c.post("/cds-services/mscc-patient-view", json=body)
        assert answer.status_code == 200
        report = {r["rule"]: r for r in c.get("/reports/rules").json()}
    assert report[f"mscc-suspected@{next_minor('mscc-suspected')}"]["shadow_fired"] == 1
