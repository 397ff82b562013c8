"""Replicas on one PostgreSQL (MSCC_DECISION_WRITE=database): a replica killed with SIGKILL right after answering
loses no decision, and another replica takes the feedback for its card at once. Real processes on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from service.config import PROJECT_ROOT
from service.store.db import Store, make_engine, migrate
from service.store.spool import HEARTBEAT, DecisionSpool
from tests.helpers import decision_record, hook_request, runtime_of
from tests.pgserver import free_port

URL = "/cds-services/mscc-patient-view"


def _fresh(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS feedback, decisions, seen_tokens, alembic_version"))
    engine.dispose()


@contextmanager
def replica(url: str, folder: Path, write: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`python -m service serve` as its own process group, its journal flushed only every 5 s (so only a write
    before the answer can save a row)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSCC_")}
    env |= {
        "MSCC_DEV_MODE": "true",
        "MSCC_DATABASE_URL": url,
        "MSCC_DECISION_WRITE": write,
        "MSCC_DECISION_FLUSH_SECONDS": "5",
        "MSCC_SPOOL_DIR": str(folder / "journal"),
        "TMPDIR": str(folder),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("the replica did not become ready in 30 s")
        yield base, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _feedback(card: dict[str, Any]) -> dict[str, Any]:
    return {
        "card": card["uuid"],
        "outcome": "accepted",
        "outcomeTimestamp": "2026-11-20T09:05:00Z",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
    }


@pytest.mark.postgres
@pytest.mark.parametrize(("write", "kept"), [("database", True), ("journal", False)])
def test_a_replica_killed_right_after_answering_loses_nothing_when_it_writes_to_the_database_first(
    make_app, tmp_path: Path, postgres_url: str, write: str, kept: bool
) -> None:
    """database: the row is in PostgreSQL before the answer, so SIGKILL a moment later loses nothing and another
    replica takes the feedback at once. journal (one machine's mode), for contrast: the row waited in the killed
    replica's journal, so the other replica does not know the card."""
    _fresh(postgres_url)
    with replica(postgres_url, tmp_path, write) as (base, process):
        answer = httpx.post(base + URL, json=hook_request("01-mscc-breast-cancer-leg-weakness"), timeout=10)
        assert answer.status_code == 200
        os.killpg(process.pid, signal.SIGKILL)  # at once: no drain, no shutdown
        process.wait(timeout=10)
    card = answer.json()["cards"][0]
    other = make_app(database_url=postgres_url, spool_dir=tmp_path / "other", decision_write="database")
    with TestClient(other) as client:
        stored = client.post(f"{URL}/feedback", json={"feedback": [_feedback(card)]})
        if kept:
            assert stored.status_code == 200, stored.text
            assert stored.json() == {"stored": 1}
            assert runtime_of(client.app).store.count()["decisions"] == 1
        else:
            assert stored.status_code == 404
            assert runtime_of(client.app).store.count()["decisions"] == 0


def test_database_first_falls_back_to_the_journal_while_the_database_refuses(make_app, monkeypatch) -> None:
    """The answer never waits on a database that refuses: the row goes to the journal, and to the database when it
    takes rows again."""
    with TestClient(make_app(decision_write="database")) as client:
        runtime = runtime_of(client.app)

        def refuse(*_args: Any, **_kwargs: Any) -> None:
            raise OperationalError("INSERT", {}, Exception("connection refused"))

        monkeypatch.setattr(runtime.store, "write_decision", refuse)
        answer = client.post(URL, json=hook_request("01-mscc-breast-cancer-leg-weakness"))
        assert answer.status_code == 200
        assert runtime.spool.unwritten == 1  # journaled
        assert runtime.store.count()["decisions"] == 0
        monkeypatch.undo()
        runtime.hooks.decisions.flush()
        assert runtime.store.count()["decisions"] == 1


def test_database_first_writes_before_the_answer(make_app) -> None:
    with TestClient(make_app(decision_write="database", decision_flush_seconds=5)) as client:
        runtime = runtime_of(client.app)
        assert client.post(URL, json=hook_request("01-mscc-breast-cancer-leg-weakness")).status_code == 200
        assert runtime.store.count()["decisions"] == 1  # no flush: it was written on the answer path
        assert runtime.spool.unwritten == 0


def _store(tmp_path: Path) -> Store:
    engine = make_engine(f"sqlite:///{tmp_path / 'shared.sqlite3'}")
    migrate(engine)
    return Store(engine)


def test_a_replica_drains_the_journal_a_gone_replica_left_on_shared_storage(tmp_path: Path) -> None:
    """While the database was down, replica A journaled two rows on the shared volume, then died. Once A's heartbeat
    is a minute old, replica B drains A's journal (each row once) and removes A's folder; a live replica's journal
    (a fresh heartbeat) is left to its owner."""
    root = tmp_path / "journal"
    gone, live, adopter = (DecisionSpool(root / name) for name in ("replica-a", "replica-c", "replica-b"))
    for spool in (gone, live):
        spool.beat()
        spool.put(decision_record(f"card-{spool.folder.name}-1"))
        spool.put(decision_record(f"card-{spool.folder.name}-2"))
    minute_ago = time.time() - 61
    os.utime(root / "replica-a" / HEARTBEAT, (minute_ago, minute_ago))
    store = _store(tmp_path)
    assert adopter.adopt(store, root, stale_seconds=60) == 2
    assert store.count()["decisions"] == 2
    assert not (root / "replica-a").exists()
    assert (root / "replica-c").exists()  # alive: its owner drains it
    assert adopter.adopt(store, root, stale_seconds=60) == 0  # nothing twice


def test_the_decision_log_beats_and_adopts_on_its_drain(make_app, tmp_path: Path) -> None:
    root = tmp_path / "journal"
    orphan = DecisionSpool(root / "replica-gone")
    orphan.put(decision_record("card-orphan"))
    long_ago = time.time() - 3600
    os.utime(root / "replica-gone", (long_ago, long_ago))  # no heartbeat file: the folder's age counts
    app = make_app(decision_write="database", spool_dir=root / "replica-b", spool_shared_root=root)
    with TestClient(app) as client:
        runtime = runtime_of(client.app)
        deadline = time.monotonic() + 10  # the drainer beats and adopts as it starts (a lifespan task)
        while (root / "replica-gone").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (root / "replica-b" / HEARTBEAT).exists()
        assert not (root / "replica-gone").exists()
        with runtime.store.sessions.begin() as session:
            assert runtime.store.decision_by_card(session, "card-orphan") is not None


def test_feedback_for_a_card_still_in_a_gone_replicas_journal_is_send_again_not_unknown(
    make_app, tmp_path: Path
) -> None:
    """Nothing is refused for good: while the card's row waits in another replica's journal on the shared storage,
    feedback for it is a 503 (send it again), never a 404."""
    root = tmp_path / "journal"
    DecisionSpool(root / "replica-gone").put(decision_record("card-in-a-journal"))
    app = make_app(
        decision_write="database", spool_dir=root / "replica-b", spool_shared_root=root, feedback_wait_seconds=0
    )
    with TestClient(app) as client:
        item = {"card": "card-in-a-journal", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T09:05:00Z"}
        answer = client.post(f"{URL}/feedback", json={"feedback": [item]})
    assert answer.status_code == 503


def test_replicas_stay_ready_while_the_database_is_down_and_the_journal_holds(make_app, monkeypatch) -> None:
    """A load balancer or Kubernetes takes out replicas that are not ready: with the decision rows safe in the
    journal, a database outage must not stop decision support. One machine's mode keeps the strict 503."""
    for write, status in (("database", 200), ("journal", 503)):
        with TestClient(make_app(decision_write=write)) as client:
            store = runtime_of(client.app).store
            monkeypatch.setattr(store, "ping", lambda: False)
            ready = client.get("/readyz")
            monkeypatch.undo()
        assert ready.status_code == status, write
        assert ready.json()["checks"]["database"] == "failing"
        if write == "database":
            assert ready.json()["status"] == "degraded"
            assert "decision rows wait in the journal" in ready.json()["checks"]["decisionDurability"]
