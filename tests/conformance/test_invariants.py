"""The CDS Hooks 3.0 invariants: read from the ballot's FSH, able to fail, and checked on every exchange the suite
makes (conftest.py). The service refuses feedback and requests that break them."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conformance.invariants import bindings, check_exchange, invariants, violations
from tests.conftest import CHECKED
from tests.helpers import hook_request

URL = "/cds-services/mscc-patient-view"


def test_every_invariant_of_the_three_models_is_read_and_bound() -> None:
    keys = set(invariants())
    assert keys == {f"cds-resp-{n}" for n in range(1, 8)} | {"cds-fb-1", "cds-fb-2", "cds-fb-3", "cds-r-1", "cds-r-2"}
    bound = {key for pairs in bindings().values() for _, key in pairs}
    assert bound == keys  # none read and never applied
    assert set(bindings()) == {"CDSHooksResponse", "CDSHooksFeedback", "CDSHooksRequest"}


GOOD_CARD: dict[str, Any] = {
    "uuid": "c",
    "summary": "s",
    "indicator": "info",
    "source": {"label": "l"},
    "selectionBehavior": "at-most-one",
    "suggestions": [
        {
            "label": "swap",
            "isRecommended": True,
            "actions": [
                {"type": "delete", "description": "d", "resourceId": "ServiceRequest/1"},
                {"type": "create", "description": "c", "resource": {"resourceType": "ServiceRequest"}},
            ],
        }
    ],
    "overrideReasons": [{"system": "x", "code": "y", "display": "z"}],
    "links": [{"label": "a", "url": "https://a", "type": "absolute"}],
}


def broken(change: str) -> dict[str, Any]:
    card = copy.deepcopy(GOOD_CARD)
    suggestion = card["suggestions"][0]
    if change == "cds-resp-1":
        card["suggestions"].append({**copy.deepcopy(suggestion), "label": "second"})
    elif change == "cds-resp-2":
        suggestion["actions"][0]["resource"] = {"resourceType": "ServiceRequest", "id": "1"}
    elif change == "cds-resp-3":
        card["links"][0]["appContext"] = "for a smart app only"
    elif change == "cds-resp-4":
        del card["overrideReasons"][0]["display"]
    elif change == "cds-resp-5":
        del suggestion["actions"][1]["description"]
    elif change == "cds-resp-6":
        del card["selectionBehavior"]
    elif change == "cds-resp-7":
        suggestion["actionSelectionBehavior"] = "some"
    return {"cards": [card]}


def test_a_card_that_meets_the_model_passes() -> None:
    assert violations("CDSHooksResponse", {"cards": [GOOD_CARD]}) == []
    assert violations("CDSHooksResponse", {"cards": []}) == []


@pytest.mark.parametrize("key", [f"cds-resp-{n}" for n in range(1, 8)])
def test_each_response_invariant_can_fail(key: str) -> None:
    assert [p.split(" at ")[0] for p in violations("CDSHooksResponse", broken(key))] == [key]


@pytest.mark.parametrize(
    ("item", "key"),
    [
        ({"card": "c", "outcome": "ignored", "outcomeTimestamp": "2026-01-01T00:00:00Z"}, "cds-fb-1"),
        ({"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"}, "cds-fb-2"),
        (
            {"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00Z", "overrideReason": {}},
            "cds-fb-3",
        ),
    ],
)
def test_each_feedback_invariant_can_fail_and_the_service_refuses_such_feedback(
    client: TestClient, item: dict[str, Any], key: str
) -> None:
    assert [p.split(" at ")[0] for p in violations("CDSHooksFeedback", {"feedback": [item]})] == [key]
    card = client.post(URL, json=hook_request("01-mscc-breast-cancer-leg-weakness")).json()["cards"][0]
    answer = client.post(f"{URL}/feedback", json={"feedback": [{**item, "card": card["uuid"]}]})
    assert answer.status_code == 400, answer.text


def test_a_request_with_fhir_authorization_but_no_fhir_server_is_refused(client: TestClient) -> None:
    body = hook_request("01-mscc-breast-cancer-leg-weakness")
    body["fhirAuthorization"] = {"access_token": "t", "token_type": "Bearer", "expires_in": 60, "scope": "x"}
    assert [p.split(" at ")[0] for p in violations("CDSHooksRequest", body)] == ["cds-r-1"]
    assert client.post(URL, json=body).status_code == 400


def test_an_accepted_exchange_that_broke_the_model_would_fail_the_test() -> None:
    """What conftest.py asserts on: a 2xx answer to a bad request, or a bad answer, is named."""
    bad_request = {"fhirAuthorization": {"access_token": "t"}}
    assert check_exchange("POST", URL, bad_request, 200, {"cards": []}) == [
        "cds-r-1 at CDSHooksRequest: if fhirAuthorization details are provided, a fhirServer SHALL be specified"
    ]
    assert check_exchange("POST", URL, {}, 200, broken("cds-resp-6"))[0].startswith("cds-resp-6 at cards")
    assert check_exchange("POST", URL, bad_request, 400, {}) == []  # refused: as it should be
    assert check_exchange("GET", "/cds-services", None, 200, {}) == []


def test_every_exchange_of_the_suite_goes_through_the_check(client: TestClient) -> None:
    before = CHECKED["exchanges"]
    client.post(URL, json=hook_request("01-mscc-breast-cancer-leg-weakness"))
    assert CHECKED["exchanges"] == before + 1


def test_the_service_never_sends_action_selection_behavior(client: TestClient) -> None:
    """3.0: a service SHALL NOT use suggestion.actionSelectionBehavior without knowing the client supports it; the
    swap suggestion's delete and create are meant together, which is the default (`all`)."""
    for name in ("14-order-sign-lumbar-xray-in-myeloma", "01-mscc-breast-cancer-leg-weakness"):
        body = hook_request(name)
        service = "mscc-order-sign" if name.startswith("14") else "mscc-patient-view"
        cards = client.post(f"/cds-services/{service}", json=body).json()["cards"]
        assert cards
        assert all("actionSelectionBehavior" not in s for c in cards for s in c.get("suggestions", []))
