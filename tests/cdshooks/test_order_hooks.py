"""order-select, order-sign and encounter-start: when they answer, and what the card says about the draft order."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import CDSHOOKS, hook_request, load_json, outcome_message


def request_for(example: str) -> dict[str, Any]:
    return hook_request(example)


def mri_suggestions(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in card.get("suggestions", []) if "MRI" in s["label"]]


def test_order_select_looks_only_at_the_selected_orders(client: TestClient) -> None:
    body = request_for("15-order-select-whole-spine-mri-selected")
    body["context"]["selections"] = ["MedicationRequest/p15-draft-paracetamol"]  # paracetamol with no reason
    answer = client.post("/cds-services/mscc-order-select", json=body)
    assert answer.status_code == 200
    assert answer.json()["cards"] == []


def test_a_draft_mri_removes_the_mri_suggestion_but_keeps_the_referral(client: TestClient) -> None:
    body = request_for("15-order-select-whole-spine-mri-selected")
    card = client.post("/cds-services/mscc-order-select", json=body).json()["cards"][0]
    assert mri_suggestions(card) == []
    assert [s["label"] for s in card["suggestions"]] == ["Refer to MSCC coordinator / spinal MDT (stat)"]
    assert "**About the order Magnetic resonance imaging of cervical, thoracic, and lumbar spine" in card["detail"]
    assert "ServiceRequest/" not in card["detail"]


def test_a_spine_xray_draft_gets_an_mri_instead(client: TestClient) -> None:
    card = client.post("/cds-services/mscc-order-sign", json=request_for("14-order-sign-lumbar-xray-in-myeloma"))
    card_body = card.json()["cards"][0]
    assert len(mri_suggestions(card_body)) == 1
    assert "a plain X-ray misses early metastases" in card_body["detail"]  # the wording fits an X-ray
    assert "regional MRI" not in card_body["detail"]
    assert "CT shows" not in card_body["detail"]
    assert card_body["summary"].startswith("Spine X-ray ordered with MSCC warning signs: swap it for an MRI")
    [swap] = [s for s in card_body["suggestions"] if len(s["actions"]) > 1]
    # one suggestion swaps the draft for the MRI: the delete names the draft, then the MRI is created
    assert [a["type"] for a in swap["actions"]] == ["delete", "create"]
    assert swap["actions"][0]["resourceId"] == "ServiceRequest/p14-draft-xray"
    assert swap["label"].endswith("instead of this spine X-ray")


def test_a_draft_for_another_patient_does_not_trigger(client: TestClient) -> None:
    body = request_for("14-order-sign-lumbar-xray-in-myeloma")
    body["context"]["draftOrders"]["entry"][0]["resource"]["subject"] = {"reference": "Patient/someone-else"}
    answer = client.post("/cds-services/mscc-order-sign", json=body)
    assert answer.status_code == 200
    assert answer.json()["cards"] == []
    messages = [i["message"] for i in input_issues(answer.json()) if i["resource"] == "ServiceRequest/p14-draft-xray"]
    assert "draft order not acted on: it is for another patient" in messages


def test_a_draft_order_entry_that_cannot_be_read_is_named(client: TestClient) -> None:
    """An order that cannot be read cannot be matched: its silence must not pass for an all clear."""
    body = request_for("14-order-sign-lumbar-xray-in-myeloma")
    body["context"]["draftOrders"]["entry"].append({"resource": "not an object"})
    answer = client.post("/cds-services/mscc-order-sign", json=body)
    assert answer.status_code == 200
    assert answer.json()["cards"]  # the readable draft still gets its card
    assert {
        "resource": "context.draftOrders",
        "location": "Bundle.entry[1]",
        "message": "an entry without a resource object",
        "outcome": "set aside",
    } in input_issues(answer.json())


def test_an_invalid_draft_order_is_never_acted_on_and_is_named(client: TestClient) -> None:
    body = request_for("14-order-sign-lumbar-xray-in-myeloma")
    body["context"]["draftOrders"]["entry"][0]["resource"]["status"] = 42
    answer = client.post("/cds-services/mscc-order-sign", json=body)
    assert answer.status_code == 200
    assert answer.json()["cards"] == []
    about_it = [i for i in input_issues(answer.json()) if i["resource"] == "ServiceRequest/p14-draft-xray"]
    [issue] = [i for i in about_it if i["message"].startswith("draft order not acted on")]
    assert issue["location"] == "ServiceRequest.status"
    assert issue["outcome"] == "set aside"


def input_issues(response: dict[str, Any]) -> list[dict[str, str]]:
    return response["extension"]["org.mscc-cds.evaluation"].get("inputIssues", [])


def sandbox_rx(code: str, display: str, reason: bool) -> dict[str, Any]:
    """A MedicationRequest as the CDS Hooks Sandbox's Rx screens send it: `category` (and `reasonCode`, when there
    is one) as single objects where R4 wants arrays."""
    draft: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": "rx-1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p14"},
        "category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                                 "code": "outpatient"}]},
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code, "display": display}]
        },
    }  # fmt: skip
    if reason:
        draft["reasonCode"] = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M54.6"}]}
    return draft


@pytest.mark.parametrize(
    ("code", "display", "reason"),
    [
        ("310965", "Ibuprofen 200 MG Oral Tablet", True),  # Rx View: a reason, as a single object
        ("1049221", "Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet", False),  # Rx Sign: none
    ],
    ids=["rx-view-reason-as-object", "rx-sign-opioid-without-reason"],
)
def test_an_analgesic_from_the_sandbox_gets_the_card(client: TestClient, code: str, display: str, reason) -> None:
    body = request_for("14-order-sign-lumbar-xray-in-myeloma")
    body["context"]["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                      "entry": [{"resource": sandbox_rx(code, display, reason)}]}  # fmt: skip
    answer = client.post("/cds-services/mscc-order-sign", json=body).json()
    [card] = answer["cards"]
    assert "do not let analgesia delay imaging" in card["detail"]
    assert len(mri_suggestions(card)) == 1
    repaired = {i["location"] for i in input_issues(answer) if i["resource"] == "MedicationRequest/rx-1"}
    assert "MedicationRequest.category" in repaired
    assert ("MedicationRequest.reasonCode" in repaired) == reason
    assert all(i["outcome"] == "counted" for i in input_issues(answer) if i["resource"] == "MedicationRequest/rx-1")


def test_paracetamol_without_a_reason_stays_silent(client: TestClient) -> None:
    body = request_for("14-order-sign-lumbar-xray-in-myeloma")
    paracetamol = sandbox_rx("313782", "Acetaminophen 325 MG Oral Tablet", False)
    body["context"]["draftOrders"] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": paracetamol}],
    }
    assert client.post("/cds-services/mscc-order-sign", json=body).json()["cards"] == []


def test_draft_orders_must_be_a_bundle_and_order_select_needs_selections(client: TestClient) -> None:
    body = request_for("14-order-sign-lumbar-xray-in-myeloma")
    body["context"]["draftOrders"] = {"resourceType": "ServiceRequest"}
    assert client.post("/cds-services/mscc-order-sign", json=body).status_code == 400
    select = request_for("15-order-select-whole-spine-mri-selected")
    del select["context"]["selections"]
    assert client.post("/cds-services/mscc-order-select", json=select).status_code == 400


def test_encounter_start_needs_an_encounter_and_references_it(client: TestClient) -> None:
    body = request_for("19-encounter-start-cauda-equina")
    card = client.post("/cds-services/mscc-encounter-start", json=body).json()["cards"][0]
    resource = card["suggestions"][0]["actions"][0]["resource"]
    assert resource["encounter"] == {"reference": "Encounter/p19-emergency-visit"}
    del body["context"]["encounterId"]
    assert client.post("/cds-services/mscc-encounter-start", json=body).status_code == 400


@pytest.mark.parametrize(
    ("fixture", "service"),
    [
        ("order_sign_hook_request.json", "mscc-order-sign"),
        ("order_select_hook_request.json", "mscc-order-select"),
        ("encounter_start_hook_request.json", "mscc-encounter-start"),
    ],
)
def test_inferno_fixtures_are_understood(client: TestClient, fixture: str, service: str) -> None:
    """Real-world shaped requests: parsed and checked; without prefetch and with a FHIR server we may not call,
    the spec's answer is 412 (and the server named in the fixture is never contacted)."""
    body = load_json(CDSHOOKS / "fixtures-inferno" / fixture)
    answer = client.post(f"/cds-services/{service}", json=body)
    assert answer.status_code == 412
    assert "not on the allow-list" in outcome_message(answer)
    body["prefetch"] = {"conditions": None, "observations": None, "imaging_orders": None, "imaging_studies": None}
    answer = client.post(f"/cds-services/{service}", json=body)
    assert answer.status_code == 200
    assert answer.json()["cards"] == []


def test_a_loinc_coded_ct_spine_order_gets_the_card(client: TestClient) -> None:
    body = request_for("14-order-sign-lumbar-xray-in-myeloma")
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    draft["code"] = {"coding": [{"system": "http://loinc.org", "code": "24963-1", "display": "CT Lumbar spine"}]}
    [card] = client.post("/cds-services/mscc-order-sign", json=body).json()["cards"]
    assert "**About the order CT Lumbar spine:**" in card["detail"]
    assert len(mri_suggestions(card)) == 1
