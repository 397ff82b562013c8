"""Order cards that act: a headline of their own, wording that fits the order, one suggestion that swaps a
regional spine image for the whole-spine MRI, and the orders EHRs send (the Sandbox's CPT and Rx Sign codes)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import PROJECT_ROOT, Settings
from service.engine.loader import load_ruleset
from service.fhir.codes import CPT, RXNORM
from service.runtime import seeded_uuids
from tests.helpers import CDSHOOKS, NOW, hook_request, load_json

EXAMPLE_SITE = PROJECT_ROOT / "deploy/site.example"
SANDBOX_SPINE = [
    (c["code"], c["display"]) for c in load_json(CDSHOOKS / "sandbox-pama-spine-procedures.json")["expansion"]
]
# What the CDS Hooks Sandbox's Rx Sign sends for the NSAIDs its users pick (RxNorm SCDs, code and name)
SANDBOX_RX_SIGN = [
    ("198013", "naproxen 500 MG Oral Tablet"),
    ("197805", "ibuprofen 400 MG Oral Tablet"),
    ("197806", "ibuprofen 600 MG Oral Tablet"),
    ("197807", "ibuprofen 800 MG Oral Tablet"),
]


@pytest.fixture(scope="module")
def site_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app with the example site folder for the whole module (the parametrized cases only read)."""
    database = tmp_path_factory.mktemp("site") / "test.sqlite3"
    settings = Settings(dev_mode=True, database_url=f"sqlite:///{database}", site_dir=EXAMPLE_SITE)
    with TestClient(create_app(settings, clock=lambda: NOW, new_uuid=seeded_uuids("site"))) as client:
        yield client


def imaging_order(code: str, display: str, *, system: str = CPT, with_id: bool = True) -> dict[str, Any]:
    body = hook_request("14-order-sign-lumbar-xray-in-myeloma")
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    draft["code"] = {"coding": [{"system": system, "code": code, "display": display}]}
    if not with_id:
        del draft["id"]
    return body


def medication_order(code: str, display: str) -> dict[str, Any]:
    """Rx Sign's shape: a MedicationRequest with an RxNorm coding and no reason, for the myeloma patient."""
    body = copy.deepcopy(hook_request("14-order-sign-lumbar-xray-in-myeloma"))
    body["context"]["draftOrders"]["entry"] = [
        {
            "resource": {
                "resourceType": "MedicationRequest",
                "id": "rx-1",
                "status": "draft",
                "intent": "order",
                "subject": {"reference": "Patient/p14"},
                "medicationCodeableConcept": {
                    "text": display,
                    "coding": [{"system": RXNORM, "code": code, "display": display}],
                },
            }
        }
    ]
    return body


def sign(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/cds-services/mscc-order-sign", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def issues(answer: dict[str, Any]) -> list[dict[str, str]]:
    return list(answer["extension"]["org.mscc-cds.evaluation"].get("inputIssues", []))


@pytest.mark.parametrize(("code", "display"), SANDBOX_SPINE, ids=[c for c, _ in SANDBOX_SPINE])
def test_every_sandbox_spine_ct_and_mri_code_is_swapped_for_the_whole_spine_mri(
    site_client: TestClient, code: str, display: str
) -> None:
    [card] = sign(site_client, imaging_order(code, display))["cards"]
    kind = "Spine CT" if display.startswith("Computed tomography") else "Regional spine MRI"
    assert card["summary"].startswith(f"{kind} ordered with MSCC warning signs")
    assert len(card["summary"]) <= 140
    swap = card["suggestions"][0]
    assert [a["type"] for a in swap["actions"]] == ["delete", "create"]
    assert swap["actions"][0]["resourceId"] == "ServiceRequest/p14-draft-xray"
    assert "MRI" in swap["label"]
    assert swap["isRecommended"] is True
    wording = "CT shows the bone" if kind == "Spine CT" else "an MRI of one or two regions misses"
    assert wording in card["detail"]


def test_the_example_site_holds_every_cpt_spine_imaging_code() -> None:
    ruleset = load_ruleset(PROJECT_ROOT / "rules", EXAMPLE_SITE)
    wanted = {
        *(str(c) for c in range(72125, 72134)),  # CT, each region without / with / without then with contrast
        *("72141", "72142", "72156", "72146", "72147", "72157", "72148", "72149", "72158"),  # MRI likewise
        *("72020", "72040", "72050", "72052", "72070", "72072", "72074", "72080", "72081", "72082", "72083"),
        *("72084", "72100", "72110", "72114", "72120", "72220"),  # X-ray
        *("62302", "62303", "62304", "62305", "72240", "72255", "72265", "72270"),  # myelography
    }
    missing = [c for c in sorted(wanted) if "spine-imaging-not-whole-spine-mri" not in ruleset.codes.lookup((CPT, c))]
    assert missing == []


def test_myelography_gets_its_own_wording(site_client: TestClient) -> None:
    [card] = sign(site_client, imaging_order("62304", "Myelography by lumbar injection, lumbosacral"))["cards"]
    assert card["summary"].startswith("Myelography ordered")
    assert "myelography is invasive" in card["detail"]


def test_a_draft_without_an_id_gets_the_mri_but_no_delete(site_client: TestClient) -> None:
    [card] = sign(site_client, imaging_order("72131", "CT lumbar spine without contrast", with_id=False))["cards"]
    assert [a["type"] for a in card["suggestions"][0]["actions"]] == ["create"]  # nothing the client could delete


def test_when_the_mri_is_already_done_the_headline_does_not_promise_one(client: TestClient) -> None:
    body = hook_request("16-whole-spine-mri-done-last-week")
    body["hook"] = "order-sign"
    draft = imaging_order("840361000", "Plain X-ray of lumbar vertebral column region", system="http://snomed.info/sct")
    resource = draft["context"]["draftOrders"]["entry"][0]["resource"]
    resource["subject"] = {"reference": f"Patient/{body['context']['patientId']}"}
    body["context"] = {**body["context"], "draftOrders": draft["context"]["draftOrders"]}
    [card] = sign(client, body)["cards"]
    assert card["summary"].startswith("Spinal pain with red flags in a person with cancer")  # the rule's own
    assert [s["label"] for s in card["suggestions"]] == ["Refer to spinal MDT / acute oncology (urgent)"]
    assert all(len(s["actions"]) == 1 for s in card["suggestions"])


@pytest.mark.parametrize(("code", "display"), SANDBOX_RX_SIGN)
def test_the_sandbox_rx_sign_nsaids_get_the_analgesia_card(client: TestClient, code: str, display: str) -> None:
    answer = sign(client, medication_order(code, display))
    [card] = answer["cards"]
    assert card["summary"].startswith("Analgesic ordered with spinal warning signs: keep it")
    # the analgesic stays: no suggestion deletes it
    assert all(a["type"] == "create" for s in card["suggestions"] for a in s["actions"])
    [named] = [i for i in issues(answer) if i["resource"] == "MedicationRequest/rx-1"]
    assert named["outcome"] == "counted"
    assert f"RxNorm {code} is not listed" in named["message"]
    assert "by its RxNorm name" in named["message"]


def test_a_listed_opioid_code_needs_no_name(client: TestClient) -> None:
    answer = sign(client, medication_order("1049589", "ibuprofen 400 MG / oxycodone hydrochloride 5 MG Oral Tablet"))
    assert len(answer["cards"]) == 1
    assert [i for i in issues(answer) if i["resource"] == "MedicationRequest/rx-1"] == []


@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("0000001", "ketorolac tromethamine 5 MG/ML Ophthalmic Solution"),  # eye drops are not analgesia for the spine
        ("0000002", "acetaminophen 500 MG Oral Tablet"),  # paracetamol alone is not in the set
        ("0000003", "aspirin 81 MG Oral Tablet"),
        ("0000004", "naproxenol 5 MG Oral Tablet"),  # a name that only begins like an ingredient
    ],
)
def test_names_that_are_not_an_nsaid_or_opioid_are_not_taken(client: TestClient, code: str, display: str) -> None:
    answer = sign(client, medication_order(code, display))
    assert answer["cards"] == []
    [unknown] = [i for i in issues(answer) if i["resource"] == "MedicationRequest/rx-1"]
    assert unknown["location"] == "medicationCodeableConcept"
    assert f"RxNorm {code}" in unknown["message"]
    assert "not checked" in unknown["message"]


def test_an_order_code_no_value_set_knows_is_named(client: TestClient) -> None:
    answer = sign(client, imaging_order("99999", "Something the service has never seen"))
    assert answer["cards"] == []
    [unknown] = issues(answer)
    assert unknown["resource"] == "ServiceRequest/p14-draft-xray"
    assert unknown["location"] == "code"
    assert "CPT 99999" in unknown["message"]
    assert unknown["outcome"] == "set aside"
