"""The host replay table: a token id is recorded once, refused while it lives, its slot reused once it expired."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from service.cdshooks.replay import RETRY_SECONDS, HostReplayTable, HostReplayTableOpener, ReplayTableFault


def test_a_token_id_is_recorded_once_and_refused_while_it_lives(tmp_path: Path) -> None:
    table = HostReplayTable(tmp_path / "replay.table", slots=64)
    assert table.remember("iss|a", expires=200, now=100) is True
    assert table.remember("iss|a", expires=200, now=150) is False
    assert table.remember("iss|b", expires=200, now=150) is True
    assert table.remember("iss|a", expires=400, now=201) is True  # expired: the id may be used again


def test_processes_share_the_file(tmp_path: Path) -> None:
    first = HostReplayTable(tmp_path / "replay.table", slots=64)
    second = HostReplayTable(tmp_path / "replay.table", slots=64)
    assert first.remember("iss|a", expires=200, now=100) is True
    assert second.remember("iss|a", expires=200, now=100) is False
    first.close()
    assert HostReplayTable(tmp_path / "replay.table", slots=64).remember("iss|a", 200, 100) is False  # restarted


def test_a_full_run_of_slots_says_so_and_expired_slots_are_free_again(tmp_path: Path) -> None:
    table = HostReplayTable(tmp_path / "replay.table", slots=4)
    assert [table.remember(f"iss|{n}", expires=200, now=100) for n in range(4)] == [True] * 4
    assert table.remember("iss|x", expires=200, now=100) is None  # no room: the caller asks the database
    assert table.remember("iss|x", expires=300, now=201) is True  # every slot expired: room again
    for n in range(4):  # an expired slot never hides a live id stored after it
        assert table.remember(f"iss|{n}", expires=300, now=201) in (True, None)
    assert table.remember("iss|x", expires=300, now=250) is False


def test_a_table_sized_otherwise_starts_afresh(tmp_path: Path) -> None:
    HostReplayTable(tmp_path / "replay.table", slots=8).remember("iss|a", 200, 100)
    assert HostReplayTable(tmp_path / "replay.table", slots=16).remember("iss|a", 200, 100) is True


def test_a_table_that_cannot_be_opened_is_tried_again_later(tmp_path: Path, monkeypatch) -> None:
    """A folder that refuses the file (here: a directory stands where the file goes) gives None, not an error;
    the opener tries again once RETRY_SECONDS have passed, and then serves the table."""
    now = [0.0]
    path = tmp_path / "replay.table"
    path.mkdir()
    monkeypatch.setattr("service.cdshooks.replay.DEFAULT_SLOTS", 8)
    opener = HostReplayTableOpener(path, clock=lambda: now[0])
    assert opener.table() is None
    path.rmdir()
    now[0] = RETRY_SECONDS / 2
    assert opener.table() is None  # not yet tried again
    assert not path.exists()
    now[0] = RETRY_SECONDS
    table = opener.table()
    assert table is not None
    assert table.remember("iss|a", 200, 100) is True
    assert opener.table() is table
    opener.close()


def _fault_opener(tmp_path: Path, monkeypatch, now: list[float]) -> HostReplayTableOpener:
    monkeypatch.setattr("service.cdshooks.replay.DEFAULT_SLOTS", 8)
    opener = HostReplayTableOpener(tmp_path / "replay.table", clock=lambda: now[0])
    assert opener.remember("iss|a", 200, 100) == (True, None)
    return opener


def test_a_disk_that_refuses_a_write_drops_the_table_until_retry(tmp_path: Path, monkeypatch) -> None:
    """Disk full: the write fails with ENOSPC, an error the worker survives (a mapped page would have killed it
    with SIGBUS). The database answers meanwhile; the table is opened again once RETRY_SECONDS have passed."""
    now = [0.0]
    opener = _fault_opener(tmp_path, monkeypatch, now)

    def disk_full(*_: object) -> int:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr("service.cdshooks.replay.os.pwrite", disk_full)
        assert opener.remember("iss|b", 200, 100) == (None, "host-table-fault")
        assert opener.remember("iss|c", 200, 100) == (None, "host-table-unavailable")  # not retried yet
    now[0] = RETRY_SECONDS
    assert opener.remember("iss|a", 200, 100) == (False, None)  # the file kept what it held
    assert opener.remember("iss|b", 200, 100) == (True, None)


def test_a_deleted_or_truncated_file_is_noticed_and_made_afresh(tmp_path: Path, monkeypatch) -> None:
    """A file deleted under the workers would split them over two tables; one cut short would be read past its
    end. Both are faults: the table is dropped, and made afresh on the retry."""
    now = [0.0]
    opener = _fault_opener(tmp_path, monkeypatch, now)
    (tmp_path / "replay.table").unlink()
    now[0] = 1.5  # past the identity check's interval
    assert opener.remember("iss|b", 200, 100) == (None, "host-table-fault")
    now[0] = 1.5 + RETRY_SECONDS
    assert opener.remember("iss|b", 200, 100) == (True, None)
    assert (tmp_path / "replay.table").stat().st_size == 8 * 16
    with (tmp_path / "replay.table").open("r+b") as handle:
        handle.truncate(16)
    now[0] += 1.5
    assert opener.remember("iss|c", 200, 100) == (None, "host-table-fault")
    opener.close()


def test_a_short_read_is_a_fault_not_an_empty_slot(tmp_path: Path) -> None:
    """Cut short between identity checks, the file reads short: a fault, never "not seen" (a replay let in)."""
    table = HostReplayTable(tmp_path / "replay.table", slots=8)
    with (tmp_path / "replay.table").open("r+b") as handle:
        handle.truncate(0)
    try:
        table.remember("iss|a", 200, 100)
    except ReplayTableFault:
        pass
    else:
        raise AssertionError("a short read must raise ReplayTableFault")
    finally:
        table.close()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("chattr") is None, reason="chattr +i needs root")
def test_an_immutable_file_is_a_fault_the_worker_survives(tmp_path: Path, monkeypatch) -> None:
    now = [0.0]
    opener = _fault_opener(tmp_path, monkeypatch, now)
    path = tmp_path / "replay.table"
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        assert opener.remember("iss|b", 200, 100) == (None, "host-table-fault")
        now[0] = RETRY_SECONDS
        assert opener.remember("iss|b", 200, 100) == (None, "host-table-unavailable")  # cannot open it for writing
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    now[0] = 2 * RETRY_SECONDS
    assert opener.remember("iss|b", 200, 100) == (True, None)
    opener.close()
