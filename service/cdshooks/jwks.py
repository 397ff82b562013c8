"""Issuers' public keys, fetched only from allow-listed URLs, cached, and refreshed when an unknown `kid` appears.

A refresh is rate-limited per URL so a flood of tokens with made-up `kid`s cannot make us hammer an EHR.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
from joserfc.jwk import KeySet

from service.errors import Unauthorized

CACHE_SECONDS = 3600.0
MIN_REFRESH_SECONDS = 30.0
MAX_JWKS_BYTES = 200_000
MAX_ENTRIES = 256  # only configured URLs are ever fetched; the bound holds even so


@dataclass
class _Entry:
    keys: KeySet
    fetched_at: float


class JwksCache:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self._entries: dict[str, _Entry] = {}
        self._monotonic = time.monotonic

    async def _fetch(self, url: str) -> KeySet:
        try:
            answer = await self.client.get(url, timeout=3.0, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise Unauthorized(f"could not fetch the issuer's keys ({type(error).__name__})") from None
        if answer.status_code != 200 or len(answer.content) > MAX_JWKS_BYTES:
            raise Unauthorized(f"could not fetch the issuer's keys (HTTP {answer.status_code})")
        try:
            return KeySet.import_key_set(answer.json())
        except (ValueError, KeyError, TypeError):
            raise Unauthorized("the issuer's JWKS is not a valid key set") from None

    async def keys(self, url: str, *, kid: str | None) -> KeySet:
        """The key set at `url`, refetched when stale or when it lacks `kid` (at most every 30 s)."""
        now = self._monotonic()
        entry = self._entries.get(url)
        known = entry is not None and (kid is None or any(k.kid == kid for k in entry.keys.keys))
        fresh = entry is not None and now - entry.fetched_at < CACHE_SECONDS
        if entry is not None and known and fresh:
            return entry.keys
        if entry is not None and not known and now - entry.fetched_at < MIN_REFRESH_SECONDS:
            return entry.keys
        keys = await self._fetch(url)
        if url not in self._entries and len(self._entries) >= MAX_ENTRIES:
            oldest = min(self._entries, key=lambda known: self._entries[known].fetched_at)
            del self._entries[oldest]
        self._entries[url] = _Entry(keys, now)
        return keys
