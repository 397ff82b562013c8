import re

from fastapi.testclient import TestClient

from service.cdshooks.models import Discovery
from service.engine.prefetchplan import NOT_LABORATORY


def test_discovery_lists_the_patient_view_service_with_rules(client: TestClient) -> None:
    answer = client.get("/cds-services")
    assert answer.status_code == 200
    document = Discovery.model_validate(answer.json())
    service = next(s for s in document.services if s.hook == "patient-view")
    assert service.id == "mscc-patient-view"
    assert service.prefetch is not None
    whole_spine_mri = "http://loinc.org|30854-4"
    assert service.prefetch["conditions"] == "Condition?patient={{context.patientId}}"  # cancer codes: thousands
    assert (
        service.prefetch["observations"] == f"Observation?patient={{{{context.patientId}}}}&category={NOT_LABORATORY}"
    )
    assert service.prefetch["observations_coded"].startswith("Observation?patient={{context.patientId}}&combo-code=")
    assert service.prefetch["observations_laboratory"].startswith(
        "Observation?patient={{context.patientId}}&category=laboratory&code=http://loinc.org|38208-5,"
    )
    assert whole_spine_mri in service.prefetch["imaging_orders"]
    assert service.prefetch["imaging_studies"] == "ImagingStudy?patient={{context.patientId}}"  # no code search
    rules = service.extension["org.mscc-cds.rules"]  # type: ignore[index]
    assert rules["rulesetRevision"] == client.get("/healthz").json()["rulesetRevision"]
    assert {r["id"] for r in rules["activeRules"]} >= {"mscc-suspected", "spinal-metastasis-pain"}


def test_each_hook_is_its_own_discovery_entry(client: TestClient) -> None:
    services = client.get("/cds-services").json()["services"]
    assert {s["hook"]: s["id"] for s in services} == {
        "patient-view": "mscc-patient-view",
        "encounter-start": "mscc-encounter-start",
        "order-select": "mscc-order-select",
        "order-sign": "mscc-order-sign",
        "appointment-book": "mscc-appointment-book",
        "encounter-discharge": "mscc-encounter-discharge",
        "order-dispatch": "mscc-order-dispatch",
    }
    for service in services:
        assert service["description"]
        assert "{{context.patientId}}" in service["prefetch"]["conditions"]


def test_the_base_queries_are_offered_for_an_ehr_that_cannot_run_filters(make_app) -> None:
    with TestClient(make_app(minimal_prefetch=False)) as client:
        service = client.get("/cds-services").json()["services"][0]
        assert service["prefetch"] == {
            "patient": "Patient/{{context.patientId}}",
            "conditions": "Condition?patient={{context.patientId}}",
            "observations": "Observation?patient={{context.patientId}}",
            "imaging_orders": "ServiceRequest?patient={{context.patientId}}",
            "imaging_studies": "ImagingStudy?patient={{context.patientId}}",
            "imaging_reports": "DiagnosticReport?patient={{context.patientId}}",
        }
        from tests.helpers import hook_request

        body = hook_request("01-mscc-breast-cancer-leg-weakness")
        del body["prefetch"]["observations_laboratory"]
        assert client.post("/cds-services/mscc-patient-view", json=body).json()["cards"][0]["indicator"] == "critical"


def test_discovery_says_which_cds_hooks_version_and_hook_versions_it_implements(client: TestClient) -> None:
    """CDS Hooks 3.0 discovery: `version` (semantic) and each service's `hookVersion`, which must be the version in
    the hook's published definition (HL7 CDS Hooks Library 1.0.1, and its main branch for the deadline hooks)."""
    document = client.get("/cds-services").json()
    assert re.fullmatch(r"\d+\.\d+\.\d+", document["version"])
    published = {"patient-view": "1.0", "encounter-start": "1.0", "order-select": "1.0", "order-sign": "1.0"}
    published |= {"appointment-book": "1.0", "encounter-discharge": "1.0", "order-dispatch": "1.1"}
    assert {s["hook"]: s["hookVersion"] for s in document["services"]} == published
