"""`HookCallRoute` answers every body as FastAPI's own route machinery answers it: same status, same error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from service.api import hooks
from service.api.errors import install_error_handlers
from service.api.hookroute import HookCallRoute, is_json_media_type
from service.api.strictjson import StrictJsonRoute
from tests.conftest import AppFactory
from tests.helpers import hook_request

URL = "/cds-services/mscc-patient-view"
GOOD = json.dumps(hook_request("01-mscc-breast-cancer-leg-weakness")).encode()
JSON = {"content-type": "application/json"}


def _bodies() -> list[tuple[str, bytes, dict[str, str]]]:
    good = json.loads(GOOD)
    wrong_hook = {**good, "hook": "order-sign"}
    no_server = {**good, "fhirAuthorization": {"access_token": "t", "token_type": "Bearer", "expires_in": 1}}
    bad_instance = {**good, "hookInstance": "not-a-uuid"}
    return [
        ("empty", b"", JSON),
        ("not json", b"{not json", JSON),
        ("array", b"[]", JSON),
        ("null", b"null", JSON),
        ("number", b"1", JSON),
        ("string", b'"patient-view"', JSON),
        ("missing fields", b'{"hook": "patient-view"}', JSON),
        ("repeated key", b'{"hook": "patient-view", "hook": "order-sign"}', JSON),
        ("NaN", b'{"hook": NaN}', JSON),
        ("not utf-8", b'{"hook": "\xff"}', JSON),
        ("text/plain", GOOD, {"content-type": "text/plain"}),
        ("no content type", GOOD, {}),
        ("form", GOOD, {"content-type": "application/x-www-form-urlencoded"}),
        ("wrong hook", json.dumps(wrong_hook).encode(), JSON),
        ("authorization without server", json.dumps(no_server).encode(), JSON),
        ("bad hookInstance", json.dumps(bad_instance).encode(), JSON),
        ("context not an object", json.dumps({**good, "context": []}).encode(), JSON),
    ]


def _app_with(route_class: type, runtime: Any) -> FastAPI:
    app = FastAPI()
    app.state.runtime = runtime
    router = APIRouter(route_class=route_class)
    router.add_api_route("/cds-services/{service_id}", hooks.call_service, methods=["POST"])
    app.include_router(router)
    install_error_handlers(app)
    return app


@pytest.fixture
def pair(make_app: AppFactory) -> Iterator[tuple[TestClient, TestClient]]:
    service = make_app()
    with TestClient(service):
        runtime = service.state.runtime
        lean = TestClient(_app_with(HookCallRoute, runtime))
        standard = TestClient(_app_with(StrictJsonRoute, runtime))
        yield lean, standard


@pytest.mark.parametrize(("name", "body", "headers"), _bodies(), ids=[b[0] for b in _bodies()])
def test_the_lean_route_refuses_what_fastapi_refuses_in_the_same_words(
    pair: tuple[TestClient, TestClient], name: str, body: bytes, headers: dict[str, str]
) -> None:
    lean, standard = pair
    ours, theirs = lean.post(URL, content=body, headers=headers), standard.post(URL, content=body, headers=headers)
    assert ours.status_code == theirs.status_code, name
    assert ours.status_code != 200, name
    assert ours.json() == theirs.json(), name


def test_the_lean_route_answers_a_good_call_as_fastapi_does(pair: tuple[TestClient, TestClient]) -> None:
    lean, standard = pair
    ours, theirs = lean.post(URL, content=GOOD, headers=JSON), standard.post(URL, content=GOOD, headers=JSON)
    assert ours.status_code == theirs.status_code == 200
    assert ours.headers["content-type"] == theirs.headers["content-type"] == "application/json"
    strip = ("uuid", "id", "fullUrl")  # seeded uuids differ from call to call

    def without_ids(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: without_ids(v) for k, v in value.items() if k not in strip}
        if isinstance(value, list):
            return [without_ids(v) for v in value]
        return value

    assert ours.json()["cards"], "the example is a critical card"
    assert without_ids(ours.json()) == without_ids(theirs.json())


def test_an_unknown_service_is_404_before_the_body_is_read(pair: tuple[TestClient, TestClient]) -> None:
    lean, _ = pair
    answer = lean.post("/cds-services/nope", content=b"{not json", headers=JSON)
    assert answer.status_code == 404


@pytest.mark.parametrize(
    ("content_type", "is_json"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("application/fhir+json", True),
        ("APPLICATION/JSON", True),
        ("text/json", False),
        ("text/plain", False),
        ("application/jsonp", False),
        ("", False),
    ],
)
def test_json_media_types(content_type: str, is_json: bool) -> None:
    assert is_json_media_type(content_type) is is_json
