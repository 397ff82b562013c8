from typing import Any

import pytest

from service.cdshooks.cards import EXTENSION_KEY, CardContext, render_card
from service.engine.evaluation import evaluate_record
from service.fhir.record import build_record
from service.fhir.validate import validate_resource
from service.runtime import seeded_uuids
from tests.helpers import CANCER, NOW, PAIN, active_ref, active_version, obs


def card_for(ruleset, resources: list[dict[str, Any]]):
    evaluation = evaluate_record(ruleset, build_record("p", resources), NOW)
    return render_card(evaluation, CardContext(seeded_uuids("cards"), "Practitioner/dr", "enc-1"))


@pytest.fixture
def both_fire() -> list[dict[str, Any]]:
    return [CANCER, PAIN, obs("weak", "26544005", "2026-11-19", True)]


def test_no_card_when_nothing_fires(ruleset) -> None:
    assert card_for(ruleset, [PAIN]) is None


def test_one_card_and_one_mri_when_several_rules_fire(ruleset, both_fire) -> None:
    card = card_for(ruleset, both_fire)
    assert card.indicator == "critical"
    mri = [s for s in card.suggestions if "MRI" in s.label]
    assert len(mri) == 1
    assert mri[0].actions[0].resource["priority"] == "stat"
    assert "**Also met:**" in card.detail
    assert "**Also met:** Spinal pain with a red-flag feature in a person with cancer." in card.detail
    assert card.extension[EXTENSION_KEY]["rules"] == [
        active_ref("mscc-suspected"),
        active_ref("spinal-metastasis-pain"),
    ]


def test_card_names_rule_version_evidence_and_dates(ruleset, both_fire) -> None:
    card = card_for(ruleset, both_fire)
    assert (
        card.source.label
        == f"NICE NG234 Spinal metastases and MSCC · rule mscc-suspected {active_version('mscc-suspected')}"
    )
    for line in ("| ca | present | 1 Jan 2020 |", "| SNOMED CT 26544005 | present | 19 Nov 2026 |"):  # no display: code
        assert line in card.detail
    assert "Condition/" not in card.detail
    assert "Observation/" not in card.detail
    assert {e["reference"] for e in card.extension[EXTENSION_KEY]["evidence"]} == {
        "Condition/ca",
        "Condition/pain",
        "Observation/weak",
    }


def test_suggested_orders_are_valid_fhir_ready_to_sign(ruleset, both_fire) -> None:
    card = card_for(ruleset, both_fire)
    for suggestion in card.suggestions:
        resource = suggestion.actions[0].resource
        assert validate_resource(resource) == []
        assert resource["resourceType"] == "ServiceRequest"
        assert resource["status"] == "draft"
        assert resource["subject"] == {"reference": "Patient/p"}
        assert resource["encounter"] == {"reference": "Encounter/enc-1"}
        assert resource["requester"] == {"reference": "Practitioner/dr"}
        assert {r["reference"] for r in resource["reasonReference"]} >= {"Condition/ca", "Observation/weak"}
    mri = card.suggestions[0].actions[0].resource
    # LOINC names the whole spine; the region-free SNOMED CT concept travels with it
    assert [c["code"] for c in mri["code"]["coding"]] == ["42698-1", "241645008"]
    assert "whole spine" in mri["code"]["text"]


def test_card_follows_the_spec_shape(ruleset, both_fire) -> None:
    body = card_for(ruleset, both_fire).dump()
    assert len(body["summary"]) < 140
    assert body["selectionBehavior"] == "any"
    assert all(r["display"] for r in body["overrideReasons"])
    # the guideline is cited once, by the source line: no link repeats it
    assert all(link["url"] != body["source"]["url"] for link in body.get("links") or [])
    assert body["source"]["topic"]["code"] == "spinal-metastasis"
    assert len({body["uuid"], *(s["uuid"] for s in body["suggestions"])}) == 3

    def no_nulls_or_empty(value: Any) -> bool:
        if isinstance(value, dict):
            return all(v is not None and v != [] and no_nulls_or_empty(v) for v in value.values())
        if isinstance(value, list):
            return all(no_nulls_or_empty(v) for v in value)
        return True

    assert no_nulls_or_empty(body)


def test_markdown_table_cells_are_escaped(ruleset) -> None:
    pipe = {**PAIN, "code": {"coding": PAIN["code"]["coding"], "text": "thoracic | pain\nat T8"}}
    card = card_for(ruleset, [CANCER, pipe, obs("weak", "26544005", "2026-11-19", True)])
    assert "thoracic \\| pain at T8" in card.detail
