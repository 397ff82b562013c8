"""Errors: a CDS Hooks endpoint answers an OperationOutcome for every non-2xx status; an unexpected error is a 500
naming a logged incident, never request data, and the connection survives."""

from __future__ import annotations

import httpx

from tests.helpers import hook_request, outcome_code
from tests.liveserver import serving


def test_an_unexpected_error_is_a_json_500_and_the_keep_alive_connection_stays_open(make_app) -> None:
    app = make_app()

    @app.get("/boom", include_in_schema=False)
    def boom() -> None:
        raise RuntimeError("Ann Example's record")  # request data in an error must never reach the client

    with serving(app) as base, httpx.Client(base_url=base, timeout=5) as client:
        failed = client.get("/boom")
        first = failed.extensions["network_stream"].get_extra_info("client_addr")
        after = client.get("/healthz")
        second = after.extensions["network_stream"].get_extra_info("client_addr")
    assert failed.status_code == 500
    assert failed.json()["error"] == "internal_error"
    assert "incident" in failed.json()["message"]
    assert "Ann" not in failed.text
    assert after.status_code == 200
    assert first == second  # the same connection served both: the 500 did not drop it


def _refusals(client) -> dict[int, httpx.Response]:
    url = "/cds-services/mscc-patient-view"
    no_prefetch = {**hook_request("09-no-cancer-low-back-pain-only"), "prefetch": {}}
    return {
        400: client.post(url, content=b"{not json", headers={"content-type": "application/json"}),
        404: client.post("/cds-services/no-such-service", json=no_prefetch),
        405: client.put("/cds-services"),
        412: client.post(url, json=no_prefetch),
        413: client.post(url, content=b"[" + b" " * 3_000 + b"]", headers={"content-type": "application/json"}),
        415: client.post(url, content=b"patientId=1", headers={"content-type": "application/x-www-form-urlencoded"}),
    }


def test_every_error_of_a_cds_endpoint_is_a_valid_fhir_operation_outcome(make_app) -> None:
    """CDS Hooks 3.0 "Returning OperationOutcome": the error code, the message, one issue per detail."""
    from fastapi.testclient import TestClient
    from fhir.resources.R4B.operationoutcome import OperationOutcome

    with TestClient(make_app(max_body_bytes=2_000)) as client:
        answers = _refusals(client)
    for status, answer in answers.items():
        assert answer.status_code == status, (status, answer.text)
        assert answer.headers["content-type"] == "application/fhir+json", status
        outcome = OperationOutcome.model_validate(answer.json())
        assert outcome.issue[0].details.text, status
    assert outcome_code(answers[412]) == "precondition_failed"
    assert answers[413].json()["issue"][0]["code"] == "too-long"
    assert answers[415].json()["issue"][0]["code"] == "not-supported"


def test_operator_endpoints_keep_the_small_json_error(client) -> None:
    answer = client.post(
        "/evaluate", params={"rule": "nope@9.9.9"}, json={"resourceType": "Bundle", "type": "collection"}
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_request"
