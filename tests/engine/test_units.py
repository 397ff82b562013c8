"""Measurement thresholds carry UCUM units: values are compared after conversion, and a value in a unit that
cannot be converted is never compared (it is named as a possible warning sign that could not be read)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.engine.evaluation import evaluate_record
from service.engine.loader import load_ruleset
from service.engine.units import UnitError, commensurable, convert
from service.errors import RuleSetInvalid
from service.fhir.codes import LOINC
from service.fhir.record import build_record
from tests.helpers import CANCER, NOW, copy_rules, new_version, next_minor


def test_values_convert_to_the_thresholds_unit() -> None:
    assert convert(9.4, "mg/dL", "g/L") == pytest.approx(0.094)
    assert convert(8, "{score}", None) == 8
    assert convert(8, None, "1") == 8


@pytest.mark.parametrize("label", ["/10", "score", "points", "{score}", "1", None, "%"])
def test_a_score_with_any_label_still_compares_against_a_unitless_threshold(label) -> None:
    """The shipped pain-score criterion has no unit: its labels must never hide a 9/10 pain."""
    assert convert(9, label, None) == 9


@pytest.mark.parametrize(
    ("unit", "target"), [("mg/dL", "mmol/L"), ("mg/dL", None), (None, "mmol/L"), ("not-a-unit", "mmol/L")]
)
def test_incommensurable_units_are_refused(unit, target) -> None:
    with pytest.raises(UnitError):
        convert(9.4, unit, target)


def calcium_rules(tmp_path: Path, unit: str) -> Path:
    """A draft version of spinal-metastasis-pain whose red flag is a corrected calcium over 2.6 (in `unit`)."""
    rules = copy_rules(tmp_path)
    include = {"system": LOINC, "concept": [{"code": "17861-6"}]}
    valueset = {"resourceType": "ValueSet", "id": "calcium", "url": "https://mscc-cds.example.org/ValueSet/calcium"}
    valueset["extension"] = [
        {"url": "https://mscc-cds.example.org/StructureDefinition/valueset-unit", "valueCode": unit}
    ]
    (rules / "valuesets/calcium.json").write_text(
        json.dumps({**valueset, "status": "draft", "compose": {"include": [include]}})
    )
    new_version(
        rules,
        "spinal-metastasis-pain",
        "draft",
        lambda text: text.replace(
            "measurement: {valueset: pain-severity-score, within: $severe_pain_window, at_least: 7}",
            f"measurement: {{valueset: calcium, within: P30D, unit: '{unit}', above: 2.6}}",
        ),
    )
    return rules


def calcium(value: float, unit: str) -> dict:
    return {
        "resourceType": "Observation", "id": "ca-lab", "status": "final", "subject": {"reference": "Patient/p"},
        "code": {"coding": [{"system": LOINC, "code": "17861-6", "display": "Calcium"}]},
        "effectiveDateTime": "2026-11-18",
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }  # fmt: skip


def criterion(tmp_path: Path, observation: dict):
    ruleset = load_ruleset(calcium_rules(tmp_path, "mmol/L"))
    rule = ruleset.version("spinal-metastasis-pain", next_minor("spinal-metastasis-pain"))
    evaluation = evaluate_record(ruleset, build_record("p", [CANCER, observation]), NOW, rules=[rule])
    [decision] = evaluation.decisions
    severe = next(r for r in decision.criteria.values() if r.kind == "measurement")
    return severe, evaluation


def test_a_normal_calcium_in_mg_per_dl_does_not_pass_a_threshold_in_mmol_per_l(tmp_path: Path) -> None:
    severe, evaluation = criterion(tmp_path, calcium(9.4, "mg/dL"))
    assert not severe.held
    [(_, reason)] = severe.not_counted
    assert reason.startswith("not compared: value in mg/dL cannot be converted to mmol/L")
    assert [s.reference for s in evaluation.unreadable] == ["Observation/ca-lab"]  # named, never silent


def test_a_high_calcium_in_the_thresholds_unit_holds(tmp_path: Path) -> None:
    severe, _ = criterion(tmp_path, calcium(2.9, "mmol/L"))
    assert severe.held


def test_a_threshold_unit_that_is_not_ucum_stops_the_rule_set(tmp_path: Path) -> None:
    with pytest.raises(RuleSetInvalid, match=r"measurement\.unit: 'millimoles per litre' is not a UCUM unit"):
        load_ruleset(calcium_rules(tmp_path, "millimoles per litre"))


@pytest.mark.parametrize(
    ("unit", "other", "expected"),
    [
        (None, "{score}", True),
        ("{score}", "1", True),
        ("%", "1", True),
        ("umol/L", "mmol/L", True),
        ("mg/dL", "g/L", True),
        ("mmol/L", "{score}", False),  # a concentration is not a 0-10 score
        ("kg", "mmol/L", False),  # a mass is not a calcium concentration
        ("mg/dL", "mmol/L", False),  # mass and substance concentration need a molar mass
        (None, "mmol/L", False),
    ],
)
def test_commensurable_means_one_dimension(unit: str | None, other: str, expected: bool) -> None:
    assert commensurable(unit, other) is expected
