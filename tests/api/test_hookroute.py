"""`HookCallRoute` answers every body as FastAPI's own route machinery answers it: same status, same error."""

from __future__ import annotations

import json
import logging
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
from tests.helpers import hook_request, runtime_of

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
    runtime.attach_to(app)
    router = APIRouter(route_class=route_class)
    router.add_api_route("/cds-services/{service_id}", hooks.call_service, methods=["POST"])
    app.include_router(router)
    install_error_handlers(app)
    return app


@pytest.fixture
def pair(make_app: AppFactory) -> Iterator[tuple[TestClient, TestClient]]:
    service = make_app()
    with TestClient(service):
        runtime = runtime_of(service)
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


def test_the_call_is_counted_and_logged_after_its_answer_is_sent(client: TestClient, caplog) -> None:
    """The EHR waits for the journal write, not for the log line or the metrics: they follow the last byte."""
    events: list[str] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == "hook answered":
                counted = runtime_of(client.app).metrics.calls.labels("mscc-patient-view", "200")._value.get()
                events.append(f"logged (calls counted: {counted:g})")

    async def call() -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": URL, "raw_path": URL.encode(), "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
            "server": ("testserver", 80), "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
        }  # fmt: skip
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": GOOD, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                events.append(f"start {message['status']}")
            elif not message.get("more_body"):
                events.append("last byte sent")

        await client.app(scope, receive, send)

    handler = Recorder()
    caplog.set_level(logging.INFO, logger="service.hooks")
    logging.getLogger("service.hooks").addHandler(handler)
    try:
        client.portal.call(call)
    finally:
        logging.getLogger("service.hooks").removeHandler(handler)
    assert events == ["start 200", "last byte sent", "logged (calls counted: 1)"]
