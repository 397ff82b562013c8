"""The host replay table: a token id is recorded once, refused while it lives, its slot reused once it expired."""

from __future__ import annotations

from pathlib import Path

from service.cdshooks.replay import RETRY_SECONDS, HostReplayTable, HostReplayTableOpener


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
