"""The decision journal: every row on local disk before the answer leaves, in the database in batches, never lost
silently: through a storage outage, a full disk, a killed worker and rows the database refuses for good."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from service.config import PROJECT_ROOT
from service.store.db import Store, make_engine, migrate
from service.store.decisionrow import DecisionRecord
from service.store.spool import BATCH_ROWS, DecisionSpool
from tests.helpers import decision_record, hook_request, runtime_of

URL = "/cds-services/mscc-patient-view"
CALL = hook_request("01-mscc-breast-cancer-leg-weakness")


def row(card: str | None = None) -> DecisionRecord:
    return decision_record(card or str(uuid.uuid4()))


def line(record: DecisionRecord) -> str:
    return json.dumps({**record.as_row(), "created_at": record.created_at.isoformat()})


@pytest.fixture
def store(tmp_path: Path) -> Store:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrate(engine)
    return Store(engine)


def down(*args: object, **kwargs: object) -> None:
    raise OperationalError("INSERT", {}, Exception("database is down"))


def test_journaled_rows_wait_out_an_outage_and_are_written_once(tmp_path: Path, store: Store, monkeypatch) -> None:
    spool = DecisionSpool(tmp_path / "spool")
    rows = [row() for _ in range(3)]
    for r in rows:
        spool.put(r)
    assert spool.pending() == 3
    with monkeypatch.context() as patch:
        patch.setattr(store, "write_decision_rows", down)
        assert spool.drain(store) == 0  # storage still down: everything stays
        assert spool.stalled
    assert spool.pending() == 3
    assert spool.unwritten == 3
    store.write_decision(rows[0])  # written meanwhile by another path: the id makes it a duplicate, not a second row
    assert spool.drain(store) == 3
    assert not spool.stalled
    assert spool.pending() == 0
    assert spool.unwritten == 0
    assert spool.lag_seconds() == 0
    assert store.count()["decisions"] == 3


def test_appends_go_on_while_a_drain_takes_the_closed_file(tmp_path: Path, store: Store) -> None:
    spool = DecisionSpool(tmp_path / "spool")
    spool.put(row())
    first = spool.path
    spool.drain(store)
    spool.put(row())  # a new file: the drained one is gone
    assert spool.path != first
    assert not first.exists()
    assert spool.drain(store) == 1
    assert store.count()["decisions"] == 2


def test_a_stopped_workers_journal_is_drained_and_removed(tmp_path: Path, store: Store) -> None:
    folder = tmp_path / "spool"
    folder.mkdir()
    orphans = [folder / "decisions-999999-0.jsonl", folder / "decisions-999998.jsonl"]  # the second: older name
    for orphan in orphans:
        orphan.write_text(line(row()) + "\n")
    assert DecisionSpool(folder).drain(store) == 2
    assert not any(orphan.exists() for orphan in orphans)
    assert store.count()["decisions"] == 2


def test_a_live_workers_journal_is_left_to_it(tmp_path: Path, store: Store) -> None:
    """Another running worker drains its own files: nobody else deletes a file it may still append to."""
    folder = tmp_path / "spool"
    folder.mkdir()
    live = folder / f"decisions-{os.getppid()}-0.jsonl"  # a process that is running: the one that started pytest
    live.write_text(line(row()) + "\n")
    assert DecisionSpool(folder).drain(store) == 0
    assert live.read_text().count("\n") == 1


def test_a_reused_pid_never_appends_to_an_old_file(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    folder.mkdir()
    (folder / f"decisions-{os.getpid()}-4.jsonl").write_text(line(row()) + "\n")
    assert DecisionSpool(folder).path.name == f"decisions-{os.getpid()}-5.jsonl"


def test_a_row_the_database_refuses_for_good_is_set_aside_and_reported_never_dropped(
    tmp_path: Path, store: Store, caplog
) -> None:
    spool = DecisionSpool(tmp_path / "spool")
    broken = dataclasses.replace(row(), hook=None)  # NOT NULL: the database will never take it
    good = row()
    spool.put(broken)
    spool.put(good)
    (tmp_path / "spool" / "decisions-999999-0.jsonl").write_text("not a row\n")
    assert spool.drain(store) == 3
    assert spool.pending() == 0
    assert store.has_decision(good.id)
    rejected = (tmp_path / "spool" / "rejected-decisions.jsonl").read_text()
    assert broken.id in rejected
    assert "not a row" in rejected
    assert any(getattr(r, "fields", {}).get("decision_id") == broken.id for r in caplog.records)


def test_a_row_holding_a_line_separator_character_is_one_row(tmp_path: Path, store: Store) -> None:
    """orjson writes U+2028, U+2029 and U+0085 as they are: the journal splits on newlines only."""
    spool = DecisionSpool(tmp_path / "spool")
    odd = dataclasses.replace(row(), evidence=["Observation/a\u2028b", "Condition/c\u0085d\u2029e"])
    spool.put(odd)
    (tmp_path / "spool" / "decisions-999999-0.jsonl").write_text("[1]\n")  # JSON, but not a row
    assert spool.drain(store) == 2
    assert store.has_decision(odd.id)
    assert not (tmp_path / "spool" / "rejected-decisions.jsonl").read_text().count(odd.id)


def test_a_killed_worker_loses_no_row_it_journaled(tmp_path: Path, store: Store) -> None:
    """The row is on disk before the answer: SIGKILL a moment later, and the next drainer still writes it."""
    folder = tmp_path / "spool"
    record = row()
    script = (
        "import sys, os, signal, json, datetime\n"
        "from service.store.spool import DecisionSpool\n"
        "from service.store.decisionrow import DecisionRecord\n"
        "data = json.loads(sys.argv[2]); data['created_at'] = datetime.datetime.fromisoformat(data['created_at'])\n"
        "DecisionSpool(__import__('pathlib').Path(sys.argv[1])).put(DecisionRecord(**data))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script, str(folder), line(record)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL
    assert DecisionSpool(folder).drain(store) == 1
    assert store.has_decision(record.id)


class _Killed(BaseException):
    """The process dies here: nothing after this step runs (only the files it left count)."""


def _drain_killed_at(step: int, folder: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> int:
    """Drain a journal of 520 rows while storage takes only the first batch, the process dying just before its
    `step`-th file-system change; returns how many changes the drain made (when it was not killed first)."""
    spool = DecisionSpool(folder)
    for _ in range(BATCH_ROWS + 20):
        spool.put(row())
    real_write = store.write_decision_rows
    batches = 0

    def first_batch_only(rows: list[dict[str, object]]) -> None:
        nonlocal batches
        batches += 1
        if batches > 1:
            down()
        real_write(rows)

    changes = 0

    def dies_at_step(call):  # type: ignore[no-untyped-def]
        def changed(*args: object, **kwargs: object) -> object:
            nonlocal changes
            changes += 1
            if changes == step:
                raise _Killed
            return call(*args, **kwargs)

        return changed

    with monkeypatch.context() as patch:
        patch.setattr(store, "write_decision_rows", first_batch_only)
        for name in ("write", "ftruncate", "truncate", "replace", "rename", "unlink", "fsync"):
            patch.setattr(os, name, dies_at_step(getattr(os, name)))
        with contextlib.suppress(_Killed):
            spool.drain(store)
    spool.close()
    return changes


def test_a_drain_killed_at_any_step_loses_no_row(tmp_path: Path, store: Store, monkeypatch) -> None:
    """Storage fails partway through a file, so the drain must rewrite the rows left; the process is killed before
    each file-system change of that drain in turn, and the next drainer still writes every row exactly once."""
    steps = _drain_killed_at(0, tmp_path / "calibrate", store, monkeypatch)
    assert steps >= 3  # at least: write the rows left, sync them, put them in place
    for step in range(1, steps + 1):
        engine = make_engine(f"sqlite:///{tmp_path / f'db-{step}.sqlite3'}")
        migrate(engine)
        fresh = Store(engine)
        folder = tmp_path / f"spool-{step}"
        _drain_killed_at(step, folder, fresh, monkeypatch)
        next_worker = DecisionSpool(folder)  # same pid, next file: the killed drain's files are its own closed ones
        next_worker.drain(fresh)
        assert fresh.count()["decisions"] == BATCH_ROWS + 20, f"killed before change {step}"
        assert next_worker.pending() == 0
        assert not list(folder.glob("*.partial")), f"killed before change {step}: a partial file was left"


def test_the_answer_path_writes_nothing_to_the_database(make_app, tmp_path: Path) -> None:
    """Production mode, a signed token: the call's decision row and its token id are kept off the database."""
    from service.runtime import system_clock
    from tests.jwtkit import BASE_URL, Signer, issuers_file

    signer = Signer()
    issuers = issuers_file(tmp_path / "issuers.yaml", signer)
    app = make_app(
        clock=system_clock, dev_mode=False, issuers_file=issuers, public_base_url=BASE_URL, decision_flush_seconds=5
    )
    statements: list[str] = []
    event.listen(runtime_of(app).store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with TestClient(app) as client:
        runtime_of(app).store.engine.dispose()
        statements.clear()
        answer = client.post(URL, json=CALL, headers={"Authorization": f"Bearer {signer.token()}"})
        during = list(statements)
        assert answer.status_code == 200
        assert runtime_of(app).spool.unwritten == 1  # journaled: on its way to the database
    assert not [s for s in during if not s.lstrip().upper().startswith(("SELECT", "PRAGMA"))]


def test_rows_reach_the_database_within_the_flush_interval(make_app) -> None:
    with TestClient(make_app(decision_flush_seconds=0.05)) as client:
        store = runtime_of(client.app).store
        for _ in range(5):
            assert client.post(URL, json=CALL).status_code == 200
        deadline = time.monotonic() + 5
        while store.count()["decisions"] < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.count()["decisions"] == 5
        metrics = client.get("/metrics").text
        assert "mscc_decision_log_spool_pending 0.0" in metrics
        assert "mscc_decision_log_lag_seconds 0.0" in metrics


def test_the_database_down_during_a_hook_call_loses_no_decision_row(make_app, tmp_path: Path, monkeypatch) -> None:
    app = make_app(seed="spool", spool_drain_seconds=300)
    with TestClient(app) as client:
        runtime = runtime_of(client.app)
        real_write = runtime.store.write_decision_rows
        monkeypatch.setattr(runtime.store, "write_decision_rows", down)
        answer = client.post(URL, json=CALL)
        assert answer.status_code == 200
        card = answer.json()["cards"][0]
        runtime.hooks.decisions.flush()
        assert runtime.spool.stalled
        assert runtime.spool.pending() == 1
        assert "mscc_decision_log_spool_pending 1.0" in client.get("/metrics").text
        assert client.get("/readyz").json()["checks"]["decisionSpool"] == "1 rows waiting"
        monkeypatch.setattr(runtime.store, "write_decision_rows", real_write)
        feedback = {
            "card": card["uuid"],
            "outcome": "accepted",
            "outcomeTimestamp": "2026-11-20T09:05:00Z",
            "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
        }
        assert client.post(f"{URL}/feedback", json={"feedback": [feedback]}).json() == {"stored": 1}
        assert runtime.spool.pending() == 0
    assert runtime_of(app).settings.decision_spool_dir == tmp_path / "test.sqlite3.spool"


def test_when_the_disk_refuses_a_row_it_is_held_and_the_next_drain_writes_it(make_app, monkeypatch, caplog) -> None:
    with TestClient(make_app(spool_drain_seconds=300)) as client:
        runtime = runtime_of(client.app)

        def disk_full(_row: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(runtime.spool, "put", disk_full)
        assert client.post(URL, json=CALL).status_code == 200
        runtime.hooks.decisions.flush()
        assert runtime.store.count()["decisions"] == 1
    held = [r for r in caplog.records if "held in memory" in r.getMessage()]
    assert held[0].fields["decision_id"]


def test_a_row_neither_disk_nor_storage_takes_is_held_counted_and_written_later(make_app, monkeypatch, caplog) -> None:
    """Journal and database both refuse: the card is answered, the row is held in memory (counted as at risk, its id
    logged, /readyz degraded), and the first drain after the fault writes it: nothing lost, nothing silent."""
    with TestClient(make_app(spool_drain_seconds=300)) as client:
        runtime = runtime_of(client.app)
        monkeypatch.setattr(runtime.store, "write_decision", down)
        monkeypatch.setattr(runtime.store, "write_decision_rows", down)

        def disk_full(*_: object) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("service.store.spool.os.write", disk_full)
        answer = client.post(URL, json=CALL)
        assert answer.status_code == 200
        assert answer.json()["cards"]
        assert "mscc_decision_rows_at_risk 1.0" in client.get("/metrics").text
        ready = client.get("/readyz").json()
        assert ready["status"] == "degraded"
        assert "1 decision rows held in memory only" in ready["checks"]["decisionDurability"]
        runtime.hooks.decisions.flush()  # still refused: kept
        assert runtime.spool.at_risk == 1
        monkeypatch.undo()
        runtime.hooks.decisions.flush()
        assert runtime.store.count()["decisions"] == 1
        assert "mscc_decision_rows_at_risk 0.0" in client.get("/metrics").text
        assert "mscc_decision_log_failures_total 0.0" in client.get("/metrics").text
        assert client.post(URL, json=CALL).status_code == 200  # the journal takes the next row: durable again
        assert client.get("/readyz").json()["status"] == "ok"
    held = [r for r in caplog.records if "held in memory" in r.getMessage()]
    assert held
    assert held[0].fields["decision_id"]


def test_held_rows_go_to_the_journal_when_the_disk_returns_first(tmp_path: Path, store: Store, monkeypatch) -> None:
    spool = DecisionSpool(tmp_path / "spool")
    first = row()
    assert spool.hold(first)
    monkeypatch.setattr(store, "write_decision_rows", down)
    spool.drain(store)
    assert spool.at_risk == 0
    assert spool.unwritten == 1
    monkeypatch.undo()
    spool.drain(store)
    assert store.count()["decisions"] == 1
    assert spool.unwritten == 0


def test_past_the_memory_bound_a_row_is_lost_counted_and_named(make_app, monkeypatch, caplog) -> None:
    monkeypatch.setattr("service.store.spool.MAX_HELD", 0)
    with TestClient(make_app(spool_drain_seconds=300)) as client:
        runtime = runtime_of(client.app)
        monkeypatch.setattr(runtime.store, "write_decision", down)

        def disk_full(_row: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(runtime.spool, "put", disk_full)
        assert client.post(URL, json=CALL).status_code == 200
        assert "mscc_decision_log_failures_total 1.0" in client.get("/metrics").text
    lost = [r for r in caplog.records if "row lost" in r.getMessage()]
    assert lost
    assert lost[0].fields["decision_id"]


def test_the_current_file_deleted_under_the_worker_is_read_back(tmp_path: Path, store: Store) -> None:
    """Someone removes the file being appended to: its rows are still reachable through the descriptor, and the
    next drain writes them all."""
    spool = DecisionSpool(tmp_path / "spool")
    rows = [row() for _ in range(3)]
    for record in rows:
        spool.put(record)
    spool.path.unlink()
    assert spool.drain(store) == 3
    assert store.count()["decisions"] == 3
    assert spool.unwritten == 0
    assert spool.lost == 0


def test_rows_removed_from_a_waiting_file_are_counted_and_named(tmp_path: Path, store: Store, monkeypatch, caplog):
    """The database is down, rows wait in a closed file, and the file is cut short and another deleted: each
    row that vanished is logged by id and counted, the rest are written when the database returns."""
    spool = DecisionSpool(tmp_path / "spool")
    monkeypatch.setattr(store, "write_decision_rows", down)
    kept, cut = row(), row()
    spool.put(kept)
    spool.put(cut)
    spool.drain(store)  # rotated; refused
    waiting = sorted((tmp_path / "spool").glob("decisions-*.jsonl"))
    assert len(waiting) == 1
    waiting[0].write_bytes(waiting[0].read_bytes().split(b"\n")[0] + b"\n")
    gone = row()
    spool.put(gone)
    spool.drain(store)
    for path in (tmp_path / "spool").glob("decisions-*.jsonl"):
        if gone.id.encode() in path.read_bytes():
            path.unlink()
    monkeypatch.undo()
    assert spool.drain(store) == 1
    assert spool.lost == 2
    assert spool.unwritten == 0
    named = {r.fields["decision_id"] for r in caplog.records if "removed from the journal" in r.getMessage()}
    assert named == {cut.id, gone.id}


def test_a_journal_folder_that_cannot_be_written_shows_on_readyz_before_any_call(make_app, tmp_path: Path) -> None:
    """A journal folder on a read-only root filesystem (a manifest without its volume) is degraded at once."""
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    with TestClient(make_app(spool_dir=blocked / "spool")) as client:
        ready = client.get("/readyz").json()
    assert ready["status"] == "degraded"
    assert "MSCC_SPOOL_DIR" in ready["checks"]["decisionDurability"]


def test_a_writable_journal_folder_is_made_and_not_degraded(tmp_path: Path) -> None:
    spool = DecisionSpool(tmp_path / "not-yet" / "spool")
    assert spool.writable()
    assert (tmp_path / "not-yet" / "spool").is_dir()


def test_a_drain_looks_for_removed_files_while_the_answer_path_appends(
    tmp_path: Path, store: Store, monkeypatch
) -> None:
    """The drainer checks which of its files were removed while hook calls start new ones: it looks at a copy,
    never at the live table (a soak saw 392 feedback 500s, 'dictionary changed size during iteration')."""
    spool = DecisionSpool(tmp_path / "spool")
    for _ in range(3):  # three files waiting (storage refused them): rotated, not drained
        spool.put(decision_record(card=str(uuid.uuid4())))
        spool._rotate()
    original_exists = Path.exists

    def exists_while_calls_append(path: Path) -> bool:
        spool.put(decision_record(card=str(uuid.uuid4())))  # a hook call on another thread
        spool._rotate()
        return original_exists(path)

    monkeypatch.setattr(Path, "exists", exists_while_calls_append)
    spool._account_missing()  # raised RuntimeError before
    monkeypatch.undo()
    assert spool.lost == 0
    assert spool.lag_seconds() >= 0
    assert spool.drain(store) == store.count()["decisions"] == 6


def test_the_drainer_outlives_a_drain_that_raises(make_app, monkeypatch, caplog) -> None:
    """An unexpected error in one drain is logged with where it was raised; the next drain runs as usual."""
    app = make_app(decision_flush_seconds=0.05, spool_drain_seconds=0.05)
    decisions = runtime_of(app).hooks.decisions
    original, calls = decisions.flush, []

    def fails_once() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return original()

    monkeypatch.setattr(decisions, "flush", fails_once)
    with TestClient(app) as client:
        assert client.post(URL, json=CALL).status_code == 200
        deadline = time.monotonic() + 5
        while runtime_of(app).store.count()["decisions"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert runtime_of(app).store.count()["decisions"] == 1
    [failed] = [r for r in caplog.records if r.getMessage() == "decision journal drain failed; retrying"]
    assert failed.fields["raised_at"].startswith("tests.store.test_spool:fails_once:")
