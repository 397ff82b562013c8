"""Issuers' key sets: a broken set from an allowed URL is a 401 for every token naming it, never a 500, and the URL
is fetched at most once per refresh interval however many tokens name it, failures included."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey, OctKey

from service.cdshooks.jwks import MIN_REFRESH_SECONDS, JwksCache
from service.errors import Unauthorized

URL = "https://ehr.example.org/jwks.json"
P384 = ECKey.generate_key("P-384").as_dict(private=False) | {"kid": "good"}
P256 = ECKey.generate_key("P-256").as_dict(private=False) | {"kid": "weak"}
OCT = OctKey.generate_key(256).as_dict() | {"kid": "shared-secret"}


class Served:
    """A mock EHR key endpoint that counts its fetches."""

    def __init__(self, answer: httpx.Response | Exception) -> None:
        self.answer = answer
        self.fetches = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def cache(served: Served, now: list[float]) -> JwksCache:
    jwks = JwksCache(httpx.AsyncClient(transport=httpx.MockTransport(served)))
    jwks._monotonic = lambda: now[0]
    return jwks


BROKEN: dict[str, httpx.Response | Exception] = {
    "empty": httpx.Response(200, json={"keys": []}),
    "not a key set": httpx.Response(200, json=[]),
    "keys not a list": httpx.Response(200, json={"keys": "x"}),
    "a key missing its parameters": httpx.Response(200, json={"keys": [{"kty": "RSA"}]}),
    "bad base64": httpx.Response(200, json={"keys": [{"kty": "EC", "crv": "P-384", "x": "a", "y": "b"}]}),
    "only keys no allowed algorithm uses": httpx.Response(200, json={"keys": [P256, OCT]}),
    "not JSON": httpx.Response(200, content=b"<html>"),
    "HTTP 500": httpx.Response(500),
    "unreachable": httpx.ConnectError("refused"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_a_broken_key_set_is_a_401_and_fetched_once_per_interval(name: str) -> None:
    served, now = Served(BROKEN[name]), [1000.0]
    jwks = cache(served, now)

    async def many() -> list[BaseException | object]:
        return await asyncio.gather(*(jwks.keys(URL, kid="good") for _ in range(300)), return_exceptions=True)

    outcomes = asyncio.run(many())
    assert all(isinstance(outcome, Unauthorized) for outcome in outcomes)
    assert served.fetches == 1
    now[0] += MIN_REFRESH_SECONDS - 1
    with pytest.raises(Unauthorized):
        asyncio.run(jwks.keys(URL, kid="good"))
    assert served.fetches == 1  # the failure is remembered
    now[0] += 2
    served.answer = httpx.Response(200, json={"keys": [P384]})
    assert [k.kid for k in asyncio.run(jwks.keys(URL, kid="good")).keys] == ["good"]  # fixed: taken at once
    assert served.fetches == 2


def test_keys_no_allowed_algorithm_uses_are_dropped_from_a_usable_set() -> None:
    served, now = Served(httpx.Response(200, json={"keys": [P256, OCT, P384]})), [0.0]
    assert [k.kid for k in asyncio.run(cache(served, now).keys(URL, kid=None)).keys] == ["good"]


def test_concurrent_tokens_with_an_unknown_kid_share_one_refresh() -> None:
    served, now = Served(httpx.Response(200, json={"keys": [P384]})), [0.0]
    jwks = cache(served, now)
    asyncio.run(jwks.keys(URL, kid="good"))
    now[0] += MIN_REFRESH_SECONDS + 1

    async def many() -> list[Any]:
        return await asyncio.gather(*(jwks.keys(URL, kid=f"made-up-{n}") for n in range(100)))

    asyncio.run(many())
    assert served.fetches == 2
