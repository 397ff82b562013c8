"""Workers fork from the checked parent when that is safe, and uvicorn still exposes what is switched."""

from __future__ import annotations

import multiprocessing
import sys
import threading

import pytest
from uvicorn import _subprocess

from service import prefork


@pytest.fixture
def uvicorn_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test leaves uvicorn's start method as it found it."""
    monkeypatch.setattr(_subprocess, "spawn", _subprocess.spawn)


def test_uvicorn_still_takes_its_start_method_from_the_switched_attribute() -> None:
    assert prefork.uvicorn_start_method() in {"spawn", "fork"}  # "unknown" after an uvicorn upgrade that moved it


@pytest.mark.usefixtures("uvicorn_context")
def test_a_lone_main_thread_forks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threading, "active_count", lambda: 1)  # the test runner's own threads aside
    assert prefork.use_fork_workers()
    assert prefork.uvicorn_start_method() == "fork"


@pytest.mark.usefixtures("uvicorn_context")
def test_another_running_thread_keeps_spawn() -> None:
    _subprocess.spawn = multiprocessing.get_context("spawn")
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        assert not prefork.use_fork_workers()
    finally:
        release.set()
        thread.join()
    assert prefork.uvicorn_start_method() == "spawn"


def test_warm_imports_the_factory_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    prefork.warm("colorsys:rgb_to_hsv")
    assert "colorsys" in sys.modules
