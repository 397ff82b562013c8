"""JSON bodies with a key written twice are refused: the last one would win in silence (a second `patientId`
would switch the patient). The routes that read clinical JSON use `StrictJsonRoute`.

The parse is orjson's, with the cyclic garbage collector paused (a JSON tree has no cycles; a 1,000-resource
prefetch parses in half the time). orjson keeps the last of two equal keys without a word, so the colons are
counted in the bytes received and in the parsed value as orjson writes it again: a key dropped takes its colon
(and any in its value) with it, and nothing else changes the count except a colon written as a `\\u003a` escape.
Bodies with such an escape, and bodies orjson refuses (NaN, lone surrogates, other encodings), take the standard
library's parse, which finds and names the repeated key. Numbers are read as the standard library reads a
decimal, as doubles; an integer beyond 64 bits is one too (17 significant digits: no clinical value needs more).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):  # rare: only then look for the key, to name it
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise json.JSONDecodeError(f"the key {key!r} appears twice in one object", "", 0)
            seen.add(key)
    return found


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection while a tree without cycles is built (its objects are freed by reference counts)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _standard_parse(body: bytes) -> Any:
    with collector_paused():
        return json.loads(body, object_pairs_hook=_unique_keys)


def loads_strict(body: bytes) -> Any:
    """Parse JSON, refusing (json.JSONDecodeError) an object that repeats a key."""
    try:
        with collector_paused():
            value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _standard_parse(body)
    if not isinstance(value, dict | list):
        return value
    if body.count(b":") != orjson.dumps(value).count(b":") or b"\\u003" in body:
        return _standard_parse(body)  # a key was dropped, or colons cannot be counted: find and name it
    return value


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_strict(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict
