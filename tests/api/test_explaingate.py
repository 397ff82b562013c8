"""The gate in front of POST /evaluate: closed in production without the operator token, and bounded in bytes,
evaluations at once and share of the worker's time, each refusal made before the body is read."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from service.api.explaingate import EvaluateGate, TimeBudget
from service.config import Settings
from tests.helpers import patient_bundle
from tests.jwtkit import BASE_URL, Signer, issuers_file

NOW = "2026-11-20T09:00:00+00:00"
TOKEN = "operator-token-0123456789"


def production(tmp_path: Path, **settings: Any) -> dict[str, Any]:
    issuers = issuers_file(tmp_path / "issuers.yaml", Signer())
    return {"dev_mode": False, "issuers_file": issuers, "public_base_url": BASE_URL, **settings}


def test_production_without_an_operator_token_closes_evaluate(make_app, tmp_path: Path) -> None:
    with TestClient(make_app(**production(tmp_path))) as client:
        answer = client.post(
            "/evaluate", params={"now": NOW}, json=patient_bundle("01-mscc-breast-cancer-leg-weakness")
        )
    assert answer.status_code == 401
    assert "closed in production until MSCC_OPERATOR_TOKEN is set" in answer.json()["message"]


def test_production_with_an_operator_token_needs_it(make_app, tmp_path: Path) -> None:
    bundle = patient_bundle("01-mscc-breast-cancer-leg-weakness")
    app = make_app(**production(tmp_path, operator_token=TOKEN))
    with TestClient(app) as client:
        assert client.post("/evaluate", params={"now": NOW}, json=bundle).status_code == 401
        wrong = {"Authorization": "Bearer not-the-operator-token"}
        assert client.post("/evaluate", params={"now": NOW}, json=bundle, headers=wrong).status_code == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        answer = client.post("/evaluate", params={"now": NOW}, json=bundle, headers=right)
    assert answer.status_code == 200
    assert answer.json()["cards"]


class Inner:
    """The app behind the gate: counts the calls that reach it and the body bytes read."""

    def __init__(self, seconds: float = 0.0, clock: list[float] | None = None) -> None:
        self.reached = 0
        self.seconds = seconds
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.reached += 1
        if self.clock is not None:
            self.clock[0] += self.seconds
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def _post(gate: EvaluateGate, headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, dict[bytes, bytes]]:
    sent: list[dict[str, Any]] = []
    read = []

    async def receive() -> dict[str, Any]:
        read.append(1)
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/evaluate", "headers": headers or []}
    asyncio.run(gate(scope, receive, send))  # type: ignore[arg-type]
    assert not read  # the gate itself never reads the body
    return sent[0]["status"], dict(sent[0]["headers"])


def test_a_body_declared_too_large_is_refused_before_it_is_read() -> None:
    inner = Inner()
    gate = EvaluateGate(inner, Settings(dev_mode=True, evaluate_max_bytes=1_000))
    status, _ = _post(gate, [(b"content-length", b"50000000")])
    assert status == 413
    assert inner.reached == 0


def test_evaluations_beyond_the_concurrency_limit_wait_for_a_retry() -> None:
    inner = Inner()
    gate = EvaluateGate(inner, Settings(dev_mode=True))
    gate._running = 1  # one evaluation under way
    status, headers = _post(gate)
    assert status == 503
    assert headers[b"retry-after"] == b"1"
    gate._running = 0
    assert _post(gate)[0] == 200


def test_evaluations_past_their_share_of_the_time_are_refused_until_it_refills(tmp_path: Path) -> None:
    """Share 0.05, a 1 s burst: one 2-second evaluation (which earns 0.1 s while it runs) overdraws it by 0.9 s, so
    the next waits 18 s."""
    clock = [0.0]
    inner = Inner(seconds=2.0, clock=clock)
    gate = EvaluateGate(inner, Settings(**production(tmp_path, operator_token=TOKEN)), clock=lambda: clock[0])
    auth = [(b"authorization", f"Bearer {TOKEN}".encode())]
    assert [_post(gate, auth)[0] for _ in range(2)] == [200, 503]
    status, headers = _post(gate, auth)
    assert status == 503
    assert headers[b"retry-after"] == b"18"  # 0.9 s over at 5% of the time
    clock[0] += 17.5
    assert _post(gate, auth)[0] == 503
    clock[0] += 1
    assert _post(gate, auth)[0] == 200
    assert inner.reached == 2


def test_the_budget_refills_at_its_share_and_saves_at_most_its_burst() -> None:
    clock = [0.0]
    budget = TimeBudget(0.1, burst=1.0, clock=lambda: clock[0])
    budget.charge(3.0)
    assert not budget.available()
    assert budget.retry_after() == 20
    clock[0] += 21
    assert budget.available()
    clock[0] += 1_000
    budget.charge(1.5)
    assert not budget.available()  # only 1 s was saved, however long it waited


def test_a_long_call_earns_its_share_while_it_runs() -> None:
    """With the whole worker's time (development mode) a 5-second evaluation never refuses the next one; with 10%
    it earns half a second of its five."""
    clock = [100.0]
    whole = TimeBudget(1.0, burst=1.0, clock=lambda: clock[0])
    tenth = TimeBudget(0.1, burst=1.0, clock=lambda: clock[0])
    clock[0] += 5  # the call ran from 100 to 105
    whole.charge(5.0)
    tenth.charge(5.0)
    assert whole.available()
    assert not tenth.available()
    assert tenth.retry_after() == 35  # 1 + 0.5 - 5 = -3.5 s, at 0.1 s per second
