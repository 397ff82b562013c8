"""Workers forked from the checked parent, not spawned: start-up to ready in about a third of the time.

uvicorn starts each worker of `serve --workers N` with multiprocessing's `spawn`: a fresh interpreter that imports
FastAPI, the FHIR models and spaCy again and rebuilds the medspaCy pipeline, about 2 s of CPU per worker (on one core
the workers queue behind each other: 8.7 s to ready with two). The parent has already imported and built all of it to
check the rule set before serving, so workers forked from it start in a fraction of a second, share those pages
copy-on-write, and a worker that dies is replaced as fast.

A fork copies only the calling thread: it is safe while the parent runs no other thread and holds no connection.
`serve` forks after the migration's engine is disposed, and `use_fork_workers` refuses (uvicorn then spawns, as
before) when any other thread runs. uvicorn has no option for this; it takes its multiprocessing context from one
module attribute, checked here so that an uvicorn upgrade that moves it fails the tests, not the service.
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

from uvicorn import _subprocess


def uvicorn_start_method() -> str:
    """How uvicorn's supervisor starts worker processes now."""
    context: Any = getattr(_subprocess, "spawn", None)
    return str(context.get_start_method()) if context is not None else "unknown"


def use_fork_workers() -> bool:
    """Make uvicorn fork its workers from this process; False (and nothing changed) when that would be unsafe."""
    if not hasattr(_subprocess, "spawn") or "fork" not in multiprocessing.get_all_start_methods():
        return False
    if threading.active_count() != 1:  # a thread would be missing (and any lock it held, held forever) in the child
        return False
    _subprocess.spawn = multiprocessing.get_context("fork")  # type: ignore[assignment]
    return True


def warm(factory: str) -> None:
    """Import the app factory's module here, once, so that each forked worker finds it loaded."""
    module, _, _ = factory.partition(":")
    __import__(module)
