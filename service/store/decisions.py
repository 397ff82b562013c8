"""The decision log: one typed row per hook call, journaled before the answer leaves, never failing it.

The answer path appends the row to the local journal (`store/spool.py`): no database round trip. The journal's
drainer moves rows to the database in batches within `MSCC_DECISION_FLUSH_SECONDS`. When the disk refuses the
append, the row is held in memory ("at risk": logged with its decision id, counted in
`mscc_decision_rows_at_risk`, `/readyz` degraded) until a drain writes it, to the database or, while that refuses
too, to the journal once the disk takes it again; the answer never waits on the database. A row is lost only
when the memory bound is reached too, or when it is removed from the journal under
the worker: each is logged with its decision id (no patient data) and counted in `mscc_decision_log_failures`.

Replicas (`MSCC_DECISION_WRITE=database`) write the row to the database before the answer instead (about a
millisecond on PostgreSQL: `make bench`), so a replica killed a moment later loses nothing and every other replica
finds the card at once (feedback); the journal takes the row only while the database refuses it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from service.logs import raised_at
from service.metrics import Metrics
from service.store.breaker import StorageBreaker
from service.store.db import Store
from service.store.decisionrow import DecisionRecord
from service.store.spool import DecisionSpool

log = logging.getLogger("service.decisionlog")
ADOPT_AFTER_SECONDS = 60.0  # a replica whose journal has not beaten for this long is gone: the others drain it


class DecisionLog:
    """Journals decision rows on the answer path (about 10 microseconds), and moves them to storage in batches."""

    def __init__(
        self,
        store: Store,
        spool: DecisionSpool,
        metrics: Metrics,
        breaker: StorageBreaker | None = None,
        *,
        database_first: bool = False,
        shared_root: Path | None = None,
        adopt_after: float = ADOPT_AFTER_SECONDS,
    ) -> None:
        self.store = store
        self.spool = spool
        self.metrics = metrics
        self.breaker = breaker or StorageBreaker()
        self.database_first = database_first  # MSCC_DECISION_WRITE=database: replicas that may die at any moment
        self.shared_root = shared_root  # MSCC_SPOOL_SHARED_ROOT: the replicas' journals, each in its own folder
        self.adopt_after = adopt_after  # a journal folder whose heartbeat is this old belongs to a replica gone
        self.beat_every = adopt_after / 6  # every 10 s at the default minute: a live replica is never taken for gone
        self._last_beat = -adopt_after
        self._lost_counted = 0

    async def write(self, record: DecisionRecord) -> None:
        """With `database_first`, write the row to the database before the answer leaves (one attempt; storage that
        failed a moment ago is not waited on: the breaker). Otherwise, or when that fails, journal it; when the disk
        refuses too, hold it in memory for the drainer. A held row is at risk until written: counted and logged."""
        if self.database_first and not self.breaker.open:
            try:
                await asyncio.to_thread(self.store.write_decision, record, 1)
                return
            except SQLAlchemyError as error:
                self.breaker.failed()
                fields = {"decision_id": record.id, "service": record.service_id, "error": type(error).__name__}
                log.warning("decision row not written before the answer: journaled", extra={"fields": fields})
        try:
            self.spool.put(record)
            return
        except OSError as disk:
            fields_ = {"decision_id": record.id, "service": record.service_id, "spool_error": type(disk).__name__}
        if self.spool.hold(record):
            self.metrics.rows_at_risk.set(self.spool.at_risk)
            log.warning(
                "decision journal refused a row: held in memory until storage takes it", extra={"fields": fields_}
            )
        else:
            self.metrics.log_failures.inc()
            log.error("decision log row lost: the journal refused it and memory is full", extra={"fields": fields_})

    def flush(self) -> int:
        """Move this worker's journaled rows to storage now (readers that must see every answered call). A storage
        outage leaves them on disk (`spool.stalled`), and so does a journal the disk cannot read (logged)."""
        try:
            written = self.spool.drain(self.store)
            if self.shared_root is not None and time.monotonic() - self._last_beat >= self.beat_every:
                self._last_beat = time.monotonic()
                self.spool.beat()
                if not self.spool.stalled:
                    written += self.spool.adopt(self.store, self.shared_root, self.adopt_after)
            if written or not self.spool.stalled:
                self.breaker.succeeded()  # storage takes rows again: the answer path may use it
        except OSError as error:
            self.spool.stalled = True
            log.error("decision journal could not be read", extra={"fields": {"error": type(error).__name__}})
            written = 0
        self.observe()
        return written

    async def drain_forever(self, flush_seconds: float, retry_seconds: float) -> None:
        """The worker's drainer (a lifespan task): move journaled rows to storage in batches every `flush_seconds`
        (and rows stopped workers left); while storage refuses them, every `retry_seconds`. A drain that raises is
        logged with where, and retried: it never ends the drainer."""
        while True:
            try:
                written = await asyncio.to_thread(self.flush)
            except Exception as error:
                fields = {"error": type(error).__name__, **raised_at(error)}
                log.error("decision journal drain failed; retrying", extra={"fields": fields})
                await asyncio.sleep(retry_seconds)
                continue
            if self.spool.stalled:
                self.metrics.storage_refusals.inc()
                log.warning(
                    "decision rows wait on disk: storage refused them",
                    extra={"fields": {"rows": self.spool.unwritten, "written": written}},
                )
                await asyncio.sleep(retry_seconds)
                continue
            await asyncio.sleep(flush_seconds)

    def observe(self) -> None:
        """Bring the journal gauges up to date (/metrics reads them), and count rows lost under the journal."""
        self.metrics.spool_pending.set(self.spool.unwritten)
        self.metrics.decision_lag.set(self.spool.lag_seconds())
        self.metrics.rows_at_risk.set(self.spool.at_risk)
        if self.spool.lost > self._lost_counted:
            self.metrics.log_failures.inc(self.spool.lost - self._lost_counted)
            self._lost_counted = self.spool.lost

    @property
    def degraded(self) -> list[str]:
        """What keeps decision rows from being durable now, in words for /readyz (empty when nothing does)."""
        found = []
        if self.spool.at_risk:
            found.append(f"{self.spool.at_risk} decision rows held in memory only: journal and database refuse them")
        if self.spool.journal_failing:
            found.append("the decision journal refuses writes: rows wait in memory for the database")
        elif not self.spool.writable():
            found.append(
                "the decision journal folder (MSCC_SPOOL_DIR) cannot be written: rows would wait in memory for the "
                "database"
            )
        return found
