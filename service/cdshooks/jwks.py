"""Issuers' public keys, fetched only from allow-listed URLs, cached, and refreshed when an unknown `kid` appears.

A URL is fetched at most once per `MIN_REFRESH_SECONDS` however many tokens name it: concurrent calls wait on the
one fetch in flight, and a failed fetch (unreachable, not 200, not a key set, no key usable for ES384/RS384) is
remembered for that long too, so a flood of tokens naming a broken key set costs the EHR one request, and each
token a 401, never a 500.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from service.errors import Unauthorized

CACHE_SECONDS = 3600.0
MIN_REFRESH_SECONDS = 30.0
MAX_JWKS_BYTES = 200_000
MAX_ENTRIES = 256  # only configured URLs are ever fetched; the bound holds even so
MIN_RSA_BITS = 2048


@dataclass
class _Entry:
    keys: KeySet | None  # None: the last fetch failed, for `failure`
    fetched_at: float
    failure: str = ""


class JwksCache:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self._entries: dict[str, _Entry] = {}
        self._in_flight: dict[str, asyncio.Future[_Entry]] = {}
        self._monotonic = time.monotonic

    async def _fetch(self, url: str) -> KeySet:
        try:
            answer = await self.client.get(url, timeout=3.0, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise Unauthorized(
                f"could not fetch the issuer's keys ({type(error).__name__})", reason="key_set"
            ) from None
        if answer.status_code != 200 or len(answer.content) > MAX_JWKS_BYTES:
            raise Unauthorized(f"could not fetch the issuer's keys (HTTP {answer.status_code})", reason="key_set")
        try:
            keys = KeySet.import_key_set(answer.json())
        except (JoseError, ValueError, KeyError, TypeError, AttributeError):
            raise Unauthorized("the issuer's JWKS is not a valid key set", reason="key_set") from None
        usable = [key for key in keys.keys if _usable(key)]
        if not usable:
            raise Unauthorized("the issuer's JWKS holds no key usable for ES384 or RS384", reason="key_set")
        return KeySet(usable)

    async def keys(self, url: str, *, kid: str | None) -> KeySet:
        """The key set at `url`, refetched when stale or when it lacks `kid` (at most every 30 s)."""
        now = self._monotonic()
        entry = self._entries.get(url)
        if entry is not None and now - entry.fetched_at < MIN_REFRESH_SECONDS:
            return _keys_of(entry)  # fetched a moment ago: known kid or not, failed or not
        cached = entry.keys if entry is not None and now - entry.fetched_at < CACHE_SECONDS else None
        if cached is not None and _holds(cached, kid):
            return cached
        return _keys_of(await self._refresh(url))

    async def _refresh(self, url: str) -> _Entry:
        """One fetch per URL at a time: callers arriving meanwhile share its outcome."""
        pending = self._in_flight.get(url)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._in_flight[url] = future
        try:
            try:
                entry = _Entry(await self._fetch(url), self._monotonic())
            except Unauthorized as refusal:
                entry = _Entry(None, self._monotonic(), refusal.message)
            if url not in self._entries and len(self._entries) >= MAX_ENTRIES:
                oldest = min(self._entries, key=lambda known: self._entries[known].fetched_at)
                del self._entries[oldest]
            self._entries[url] = entry
            future.set_result(entry)
            return entry
        except BaseException as error:  # cancelled: the waiters must not hang
            if not future.done():
                future.set_exception(error)
            raise
        finally:
            del self._in_flight[url]


def _holds(keys: KeySet, kid: str | None) -> bool:
    return kid is None or any(key.kid == kid for key in keys.keys)


def _keys_of(entry: _Entry) -> KeySet:
    if entry.keys is None:
        raise Unauthorized(entry.failure, reason="key_set")
    return entry.keys


def _usable(key: object) -> bool:
    """An EC P-384 or RSA (2048 bits or more) public key: the only kinds ES384 and RS384 verify with."""
    if isinstance(key, ECKey):
        return key.curve_name == "P-384"
    if isinstance(key, RSAKey):
        return key.raw_value.key_size >= MIN_RSA_BITS
    return False
