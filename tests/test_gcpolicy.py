"""The collector on a timer: automatic collection is off while the worker serves, cycles still go, and stopping
gives Python's automatic collection back."""

from __future__ import annotations

import asyncio
import gc
import weakref

from service.gcpolicy import CollectorOnTimer


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_cycles_are_collected_on_the_timer_and_automatic_collection_comes_back() -> None:
    async def scenario() -> tuple[bool, bool, int]:
        collector = CollectorOnTimer(0.01)
        collector.start()
        off = not gc.isenabled()
        node = Node()
        gone = weakref.ref(node)
        del node
        for _ in range(200):  # a few ticks
            if gone() is None:
                break
            await asyncio.sleep(0.005)
        collector.stop()
        return off, gone() is None, collector.ticks

    assert gc.isenabled()
    off, freed, ticks = asyncio.run(scenario())
    assert off
    assert freed
    assert ticks >= 1
    assert gc.isenabled()


def test_zero_keeps_the_automatic_collector() -> None:
    async def scenario() -> bool:
        collector = CollectorOnTimer(0)
        collector.start()
        enabled = gc.isenabled()
        collector.stop()
        return enabled

    assert asyncio.run(scenario())
