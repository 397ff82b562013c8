"""Data in an older FHIR version is refused with a message naming the version expected, never read as R4."""

from __future__ import annotations

from fastapi.testclient import TestClient

from service.fhir.validate import validate
from service.fhir.version import older_version_sign
from tests.helpers import hook_request

# A Condition as a DSTU2 server (such as the CDS Hooks Sandbox's default) returns it.
DSTU2_CORD_COMPRESSION = {
    "resourceType": "Condition",
    "id": "dstu2-scc",
    "patient": {"reference": "Patient/p09"},
    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "71286001"}]},
    "clinicalStatus": "active",
    "verificationStatus": "confirmed",
    "dateRecorded": "2026-11-19",
}


def test_a_dstu2_condition_is_recognised_and_set_aside_naming_r4() -> None:
    location, message = older_version_sign(DSTU2_CORD_COMPRESSION) or ("", "")
    assert location == "Condition.patient"
    assert "DSTU2" in message
    assert "FHIR R4 (4.0.1)" in message
    checked = validate(DSTU2_CORD_COMPRESSION)
    assert checked.fatal
    assert [i.message for i in checked.issues] == [message]


def test_an_stu3_style_plain_code_status_is_recognised() -> None:
    stu3 = {k: v for k, v in DSTU2_CORD_COMPRESSION.items() if k not in ("patient", "dateRecorded")}
    stu3["subject"] = {"reference": "Patient/p09"}
    location, message = older_version_sign(stu3) or ("", "")
    assert location == "Condition.clinicalStatus"
    assert "before R4" in message


def test_valid_r4_never_looks_old() -> None:
    from tests.helpers import CANCER, PAIN, obs

    for resource in (CANCER, PAIN, obs("weak", "26544005", "2026-11-19", True)):
        assert older_version_sign(resource) is None


def test_a_dstu2_warning_sign_is_named_on_a_card_not_lost(client: TestClient) -> None:
    body = hook_request("09-no-cancer-low-back-pain-only")
    body["prefetch"]["conditions"]["entry"].append({"resource": DSTU2_CORD_COMPRESSION})
    answer = client.post("/cds-services/mscc-patient-view", json=body).json()
    issues = answer["extension"]["org.mscc-cds.evaluation"]["inputIssues"]
    [issue] = [i for i in issues if i["resource"] == "Condition/dstu2-scc"]
    assert "FHIR R4 (4.0.1)" in issue["message"]
    assert issue["outcome"] == "set aside"
    [card] = answer["cards"]
    assert "Condition/dstu2-scc" in str(card["extension"])
