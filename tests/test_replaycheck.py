"""The replay check's fallbacks: host table, then the database, then this process alone, each counted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from service.cdshooks.replay import HostReplayTableOpener
from service.metrics import Metrics
from service.replaycheck import ReplayCheck
from service.store.breaker import StorageBreaker
from service.store.db import Store, make_engine, migrate

NOW = datetime(2026, 12, 5, 9, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def run(awaitable: Any) -> Any:
    return asyncio.run(awaitable)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    engine = make_engine(f"sqlite:///{tmp_path / 'replay.sqlite3'}")
    migrate(engine)
    return Store(engine)


def _check(store: Store, tmp_path: Path | None = None) -> tuple[ReplayCheck, Metrics, StorageBreaker]:
    metrics, breaker = Metrics(), StorageBreaker()
    host = HostReplayTableOpener(tmp_path / "replay.table") if tmp_path else None
    return ReplayCheck(host, store, breaker, metrics, lambda: NOW), metrics, breaker


def _fallbacks(metrics: Metrics, reason: str) -> float:
    return metrics.replay_fallbacks.labels(reason)._value.get()


def test_the_host_table_answers_without_the_database(store: Store, tmp_path: Path, monkeypatch) -> None:
    check, metrics, _ = _check(store, tmp_path)
    assert _fallbacks(metrics, "storage") == 0
    check.open()

    def no_database(*_: object) -> bool:
        raise AssertionError("the database was asked")

    monkeypatch.setattr(store, "remember_token", no_database)
    assert run(check.remember("jti-1", LATER)) is True
    assert run(check.remember("jti-1", LATER)) is False  # a replay
    check.close()


def test_without_a_host_table_the_database_answers(store: Store) -> None:
    check, metrics, _ = _check(store)
    assert run(check.remember("jti-2", LATER)) is True
    assert run(check.remember("jti-2", LATER)) is False
    assert _fallbacks(metrics, "storage") == 0


def test_storage_down_lets_this_process_answer_and_opens_the_breaker(store: Store, monkeypatch) -> None:
    check, metrics, breaker = _check(store)

    def down(*_: object) -> bool:
        raise OperationalError("stmt", {}, Exception("down"))

    monkeypatch.setattr(store, "remember_token", down)
    assert run(check.remember("jti-3", LATER)) is True  # the verifier's own per-process check stands
    assert breaker.open
    assert _fallbacks(metrics, "storage") == 1
    monkeypatch.setattr(store, "remember_token", lambda *_: (_ for _ in ()).throw(AssertionError("asked")))
    assert run(check.remember("jti-4", LATER)) is True  # skipped while the breaker is open: no wait
    assert _fallbacks(metrics, "storage") == 2
