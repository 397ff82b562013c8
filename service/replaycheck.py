"""The JWT replay check every worker shares, with its fallbacks: the host table, then the database, then this process.

The host table (cdshooks/replay.py) answers without a database write; when it has no room, cannot be opened or
fails, the database table replicas share answers (counted and logged); when storage fails too, or failed a moment
ago (store/breaker.py), the verifier's per-process check stands alone. Decision support never waits on it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from service.cdshooks.replay import HostReplayTableOpener
from service.metrics import Metrics
from service.runtime import Clock
from service.store.breaker import StorageBreaker, StorageSkipped
from service.store.db import Store

log = logging.getLogger("service")


class ReplayCheck:
    def __init__(
        self,
        host: HostReplayTableOpener | None,
        store: Store,
        breaker: StorageBreaker,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self.host = host
        self.store = store
        self.breaker = breaker
        self.metrics = metrics
        self.clock = clock

    def open(self) -> None:
        """Open the host table now (a folder that refuses it does not stop the worker: the database answers)."""
        if self.host is not None:
            self.host.table()

    def close(self) -> None:
        if self.host is not None:
            self.host.close()

    async def remember(self, token_id: str, expires: datetime) -> bool:
        """True when the token id was not seen before (and is remembered now)."""
        now = self.clock()
        if self.host is not None:
            seen, fallback = self.host.remember(token_id, int(expires.timestamp()), int(now.timestamp()))
            if seen is not None:
                return seen
            self.metrics.replay_fallbacks.labels(fallback).inc()
        try:
            if self.breaker.open:
                raise StorageSkipped()
            return await asyncio.to_thread(self.store.remember_token, token_id, expires, now)
        except (SQLAlchemyError, StorageSkipped) as error:
            if isinstance(error, SQLAlchemyError):
                self.breaker.failed()
            self.metrics.replay_fallbacks.labels("storage").inc()
            log.warning(
                "replay check used this process only: storage unavailable",
                extra={"fields": {"error": type(error).__name__}},
            )
            return True
