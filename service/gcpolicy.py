"""The cyclic garbage collector runs between steps of the event loop, on a timer, never in the middle of a call.

Python's automatic collector runs every 700 allocations, so a hook call that parses a 1,000-resource prefetch
has its own tree walked several times while it is being built. Reference counting frees that tree when the call
ends; only cycles need the collector. With `MSCC_GC_INTERVAL_SECONDS` (default 0.1) a worker turns automatic
collection off and collects the young generation on a timer, the middle one every 10th tick and everything
every 100th: cyclic garbage still goes within a second, and a call's objects are walked about once, if at all.
0 keeps Python's automatic collection.
"""

from __future__ import annotations

import asyncio
import gc


class CollectorOnTimer:
    def __init__(self, interval_seconds: float) -> None:
        self.interval = interval_seconds
        self.ticks = 0
        self._handle: asyncio.TimerHandle | None = None
        self._was_enabled = gc.isenabled()

    def start(self) -> None:
        if self.interval <= 0:
            return
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._schedule()

    def _schedule(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _tick(self) -> None:
        self.ticks += 1
        generation = 2 if self.ticks % 100 == 0 else 1 if self.ticks % 10 == 0 else 0
        gc.collect(generation)
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            if self._was_enabled:
                gc.enable()
