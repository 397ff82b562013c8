"""Decision rows survive a storage outage: spooled to disk, written once when storage returns, never lost silently."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from service.store.db import Store, make_engine, migrate
from service.store.decisions import DecisionRecord
from service.store.spool import DecisionSpool
from tests.helpers import decision_record, hook_request

URL = "/cds-services/mscc-patient-view"


def row(card: str | None = None) -> DecisionRecord:
    return decision_record(card or str(uuid.uuid4()))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrate(engine)
    return Store(engine)


def down(*args: object, **kwargs: object) -> None:
    raise OperationalError("INSERT", {}, Exception("database is down"))


def test_spooled_rows_are_written_once_when_storage_returns(tmp_path: Path, store: Store, monkeypatch) -> None:
    spool = DecisionSpool(tmp_path / "spool")
    rows = [row() for _ in range(3)]
    for r in rows:
        spool.put(r)
    assert spool.pending() == 3
    with monkeypatch.context() as patch:
        patch.setattr(store, "write_decision", down)
        assert spool.drain(store) == 0  # storage still down: everything stays
    assert spool.pending() == 3
    store.write_decision(rows[0])  # written meanwhile by another path: the id makes it a duplicate, not a second row
    assert spool.drain(store) == 3
    assert spool.pending() == 0
    assert store.count()["decisions"] == 3


def test_a_stopped_workers_spool_is_drained_and_removed(tmp_path: Path, store: Store) -> None:
    folder = tmp_path / "spool"
    folder.mkdir()
    orphan = folder / "decisions-999999.jsonl"
    r = row()
    orphan.write_text(json.dumps({**r.as_row(), "created_at": r.created_at.isoformat()}) + "\n")
    assert DecisionSpool(folder).drain(store) == 1
    assert not orphan.exists()
    assert store.count()["decisions"] == 1


def test_the_database_down_during_a_hook_call_loses_no_decision_row(make_app, tmp_path: Path, monkeypatch) -> None:
    app = make_app(seed="spool", spool_drain_seconds=300)
    with TestClient(app) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        real_write = runtime.store.write_decision
        monkeypatch.setattr(runtime.store, "write_decision", down)
        answer = client.post(URL, json=hook_request("01-mscc-breast-cancer-leg-weakness"))
        assert answer.status_code == 200
        card = answer.json()["cards"][0]
        assert runtime.spool.pending() == 1
        assert "mscc_decision_log_spooled_total 1.0" in client.get("/metrics").text
        assert client.get("/readyz").json()["checks"]["decisionSpool"] == "1 rows waiting"
        monkeypatch.setattr(runtime.store, "write_decision", real_write)
        assert runtime.spool.drain(runtime.store) == 1
        feedback = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-11-20T09:05:00Z"}
        assert client.post(f"{URL}/feedback", json={"feedback": [feedback]}).json() == {"stored": 1}
    assert app.state.runtime.settings.decision_spool_dir == tmp_path / "test.sqlite3.spool"


def test_a_row_neither_storage_nor_disk_takes_is_counted_and_logged(make_app, monkeypatch, caplog) -> None:
    with TestClient(make_app(spool_drain_seconds=300)) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        monkeypatch.setattr(runtime.store, "write_decision", down)

        def disk_full(_row: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(runtime.spool, "put", disk_full)
        assert client.post(URL, json=hook_request("01-mscc-breast-cancer-leg-weakness")).status_code == 200
        assert "mscc_decision_log_failures_total 1.0" in client.get("/metrics").text
    assert any("row lost" in r.getMessage() for r in caplog.records)


def test_a_row_the_database_refuses_for_good_is_set_aside_and_reported_never_dropped(
    tmp_path: Path, store: Store, caplog
) -> None:
    spool = DecisionSpool(tmp_path / "spool")
    broken = dataclasses.replace(row(), hook=None)  # NOT NULL: the database will never take it
    good = row()
    spool.put(broken)
    spool.put(good)
    assert spool.drain(store) == 2
    assert spool.pending() == 0
    assert store.has_decision(good.id)
    rejected = (tmp_path / "spool" / "rejected-decisions.jsonl").read_text()
    assert broken.id in rejected
    assert any(getattr(r, "fields", {}).get("decision_id") == broken.id for r in caplog.records)


def test_a_live_workers_spool_file_is_never_deleted(tmp_path: Path, store: Store) -> None:
    """It may hold the file open, waiting for the lock: a deleted file would swallow its next row."""
    import os

    folder = tmp_path / "spool"
    folder.mkdir()
    live = folder / f"decisions-{os.getppid()}.jsonl"  # a process that is running: the one that started pytest
    r = row()
    live.write_text(json.dumps({**r.as_row(), "created_at": r.created_at.isoformat()}) + "\n")
    assert DecisionSpool(folder).drain(store) == 1
    assert live.exists()
    assert live.read_text() == ""
