"""POST /cds-services/{id}: the answers a CDS client can get, good and bad. Never a 500."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import (
    active_ref,
    active_version,
    hook_request,
    outcome_code,
    outcome_details,
    outcome_message,
    patient_bundle,
    runtime_of,
)

URL = "/cds-services/mscc-patient-view"
PREFLIGHT = {  # a browser's CORS preflight for a hook call
    "Origin": "https://sandbox.cds-hooks.org",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


@pytest.fixture
def request_body() -> dict[str, Any]:
    return hook_request("01-mscc-breast-cancer-leg-weakness")


def test_critical_card_for_suspected_mscc(client: TestClient, request_body: dict[str, Any]) -> None:
    answer = client.post(URL, json=request_body)
    assert answer.status_code == 200
    cards = answer.json()["cards"]
    assert [c["indicator"] for c in cards] == ["critical"]
    assert cards[0]["source"]["label"].endswith(
        f"rule mscc-suspected {active_version('mscc-suspected')}"
    )  # the short source line
    assert cards[0]["extension"]["org.mscc-cds.decision"]["rules"] == [active_ref("mscc-suspected")]
    assert "| Weakness of both legs (recognised from its words) | present | 18 Nov 2026 |" in cards[0]["detail"]
    assert "Observation/" not in cards[0]["detail"]  # ids are for machines: in the extension, never the text
    assert "revision" not in cards[0]["detail"]


def test_no_card_is_an_empty_array(client: TestClient) -> None:
    answer = client.post(URL, json=hook_request("09-no-cancer-low-back-pain-only"))
    assert answer.status_code == 200
    assert answer.json()["cards"] == []


def test_unknown_service_is_404(client: TestClient, request_body: dict[str, Any]) -> None:
    answer = client.post("/cds-services/nope", json=request_body)
    assert answer.status_code == 404
    assert outcome_code(answer) == "not_found"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "JSON"),
        (b"[]", "body"),
        (b"", "body"),
        (b'{"hook": "patient-view"}', "hookInstance"),
    ],
)
def test_malformed_requests_are_400_with_a_message(client: TestClient, body: bytes, fragment: str) -> None:
    answer = client.post(URL, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    text = json.dumps(answer.json())
    assert fragment in text


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"hook": "order-sign"}, "answers the patient-view hook"),
        ({"hook": "made-up-hook"}, "hook: Input should be"),
        ({"context": {"userId": "Practitioner/x"}}, "patientId"),
        ({"context": {"patientId": "p01", "userId": "not a reference"}}, "userId"),
        (
            {
                "fhirAuthorization": {
                    "access_token": "t",
                    "token_type": "Bearer",
                    "expires_in": 1,
                    "scope": "s",
                    "subject": "x",
                }
            },
            "fhirAuthorization was sent without fhirServer",
        ),
        ({"prefetch": {"conditions": "oops", "observations": None}}, "prefetch key 'conditions'"),
    ],
)
def test_requests_that_break_the_spec_are_400(
    client: TestClient, request_body: dict[str, Any], change: dict[str, Any], fragment: str
) -> None:
    answer = client.post(URL, json={**request_body, **change})
    assert answer.status_code == 400
    assert fragment in json.dumps(answer.json())


def test_missing_prefetch_without_fhir_server_is_412(client: TestClient, request_body: dict[str, Any]) -> None:
    body = {**request_body, "prefetch": {"conditions": request_body["prefetch"]["conditions"]}}
    answer = client.post(URL, json=body)
    assert answer.status_code == 412
    assert "observations" in outcome_message(answer)
    no_prefetch = {k: v for k, v in request_body.items() if k != "prefetch"}
    assert client.post(URL, json=no_prefetch).status_code == 412


def test_failed_prefetch_query_is_412_without_fhir_access(client: TestClient, request_body: dict[str, Any]) -> None:
    body = {
        **request_body,
        "prefetch": {**request_body["prefetch"], "observations": {"resourceType": "OperationOutcome"}},
    }
    assert client.post(URL, json=body).status_code == 412


def test_invalid_resource_is_reported_in_the_extension_not_fatal(
    client: TestClient, request_body: dict[str, Any]
) -> None:
    entries = request_body["prefetch"]["observations"]["entry"]
    broken = {**entries[0]["resource"], "effectiveDateTime": "last tuesday"}
    request_body["prefetch"]["observations"]["entry"] = [{"resource": broken}]
    request_body["prefetch"]["observations_coded"]["entry"] = [{"resource": broken}]  # the same finding, by code
    answer = client.post(URL, json=request_body)
    assert answer.status_code == 200
    issues = answer.json()["extension"]["org.mscc-cds.evaluation"]["inputIssues"]
    assert issues[0]["resource"] == "Observation/p01-weakness"
    assert issues[0]["outcome"] == "counted"
    assert "last tuesday" not in json.dumps(answer.json())
    # The weakness was the only neurological sign and its date cannot be read: never silent, a card says so.
    [card] = answer.json()["cards"]
    assert card["indicator"] == "warning"
    assert card["extension"]["org.mscc-cds.decision"]["unreadable"] == [
        {"reference": "Observation/p01-weakness", "problem": "could not read Observation.effectiveDateTime"}
    ]
    assert "| Weakness of both legs | undated | could not read Observation.effectiveDateTime |" in card["detail"]


def test_evaluation_time_extension_is_ignored_outside_dev_mode(
    make_app, tmp_path, request_body: dict[str, Any]
) -> None:
    from service.cdshooks.call import evaluation_time
    from service.cdshooks.models import HookRequest
    from tests.helpers import NOW

    issuers = tmp_path / "issuers.yaml"
    issuers.write_text("issuers: []\n")
    production = make_app(dev_mode=False, issuers_file=issuers, public_base_url="https://cds.example.org")
    request = HookRequest.model_validate({**request_body, "extension": {"org.mscc-cds.evaluation-time": "2000-01-01"}})
    calls = runtime_of(production).hooks
    assert evaluation_time(calls.options, calls.clock, request) == NOW
    development = runtime_of(make_app()).hooks
    assert evaluation_time(development.options, development.clock, request).year == 2000


def test_response_is_json_with_cors_for_browser_clients(client: TestClient, request_body: dict[str, Any]) -> None:
    answer = client.post(URL, json=request_body, headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["access-control-allow-origin"] == "*"
    preflight = client.options(
        URL,
        headers=PREFLIGHT,
    )
    assert preflight.status_code == 200


def test_resources_no_rule_reads_are_not_validated_on_the_hook_path(client: TestClient, request_body: dict) -> None:
    glucose = {
        "resourceType": "Observation",
        "id": "glu",
        "status": "final",
        "subject": {"reference": "Patient/p01"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "effectiveDateTime": "never",
    }
    request_body["prefetch"]["observations"]["entry"].append({"resource": glucose})
    answer = client.post(URL, json=request_body)
    assert answer.status_code == 200
    assert "inputIssues" not in answer.json()["extension"]["org.mscc-cds.evaluation"]
    assert [c["indicator"] for c in answer.json()["cards"]] == ["critical"]


def test_malformed_prefetch_is_named_in_the_answer_never_read_as_no_data(client: TestClient) -> None:
    body = hook_request("01-mscc-breast-cancer-leg-weakness")
    body["prefetch"]["conditions"] = {"resourceType": "Bundle", "type": "searchset", "entry": {}}
    answer = client.post(URL, json=body)
    assert answer.status_code == 412  # no FHIR server to fetch the conditions from: not an "all clear"
    body = hook_request("01-mscc-breast-cancer-leg-weakness")
    body["prefetch"]["observations"]["entry"].append({"resource": "not an object"})
    answer = client.post(URL, json=body)
    assert answer.status_code == 200
    issues = answer.json()["extension"]["org.mscc-cds.evaluation"]["inputIssues"]
    assert {
        "resource": "prefetch.observations",
        "location": "Bundle.entry[1]",
        "message": "an entry without a resource object",
        "outcome": "set aside",
    } in issues


def test_an_entry_whose_search_is_not_an_object_still_counts(client: TestClient) -> None:
    """Seen as a 500 before: `search` must be an object, and a string there says nothing about the resource."""
    body = hook_request("01-mscc-breast-cancer-leg-weakness")
    for entry in body["prefetch"]["observations"]["entry"]:
        entry["search"] = "match"
    answer = client.post(URL, json=body)
    assert answer.status_code == 200
    assert [c["indicator"] for c in answer.json()["cards"]] == ["critical"]  # the weakness was read
    issues = answer.json()["extension"]["org.mscc-cds.evaluation"]["inputIssues"]
    assert {
        "resource": "prefetch.observations",
        "location": "Bundle.entry[0].search",
        "outcome": "counted",
    }.items() <= issues[0].items()


def test_a_key_written_twice_is_refused_never_the_last_one_silently(client: TestClient) -> None:
    """A second patientId would otherwise switch the patient."""
    text = json.dumps(hook_request("01-mscc-breast-cancer-leg-weakness"))
    twice = text.replace('"patientId": "p01"', '"patientId": "p01", "patientId": "someone-else"', 1)
    assert twice != text
    answer = client.post(URL, content=twice, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert "'patientId' appears twice" in outcome_details(answer)[0]
    nested = text.replace('"status": "final"', '"status": "final", "status": "entered-in-error"', 1)
    assert client.post(URL, content=nested, headers={"content-type": "application/json"}).status_code == 400
    feedback = (
        '{"feedback": [{"card": "a", "card": "b", "outcome": "accepted", "outcomeTimestamp": "2026-11-20T09:05:00Z"}]}'
    )
    answer = client.post(f"{URL}/feedback", content=feedback, headers={"content-type": "application/json"})
    assert answer.status_code == 400


def test_a_key_written_twice_in_an_evaluated_bundle_is_an_operation_outcome(client: TestClient) -> None:
    text = json.dumps(patient_bundle("01-mscc-breast-cancer-leg-weakness"))
    twice = text.replace('"type": "collection"', '"type": "collection", "type": "searchset"', 1)
    answer = client.post("/evaluate", content=twice, headers={"content-type": "application/fhir+json"})
    assert answer.status_code == 422
    assert "appears twice" in json.dumps(answer.json())


def test_a_discovery_url_with_a_trailing_slash_works_for_discovery_calls_and_feedback(client: TestClient) -> None:
    from tests.helpers import hook_request

    discovery = client.get("/cds-services/", follow_redirects=False)
    assert discovery.status_code == 200
    assert discovery.json()["services"]
    answer = client.post("/cds-services//mscc-patient-view", json=hook_request("01-mscc-breast-cancer-leg-weakness"))
    assert answer.status_code == 200
    card = answer.json()["cards"][0]
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-20T09:00:00Z"}
    assert client.post("/cds-services//mscc-patient-view/feedback/", json={"feedback": [item]}).status_code == 200


def test_a_private_network_access_preflight_is_answered(client: TestClient) -> None:
    preflight = client.options(
        URL,
        headers={**PREFLIGHT, "Access-Control-Request-Private-Network": "true"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-private-network"] == "true"


def test_a_412_is_logged_with_the_keys_that_were_missing(client: TestClient, caplog) -> None:
    import logging

    from tests.helpers import hook_request

    body = hook_request("01-mscc-breast-cancer-leg-weakness")
    body["prefetch"] = {}
    with caplog.at_level(logging.WARNING, logger="service.hooks"):
        answer = client.post(URL, json=body)
    assert answer.status_code == 412
    [refusal] = [r for r in caplog.records if r.getMessage() == "call refused"]
    assert refusal.fields["status"] == 412
    assert "conditions" in refusal.fields["reason"]
    assert "p01" not in caplog.text
