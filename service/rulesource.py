"""The rule set being served, replaced whole while the service runs.

A reload (`POST /rules/reload`, SIGHUP, or the files changing on disk) loads the rules folder and the site folder
into a new `RuleSet` and swaps it in with one assignment; a call already under way keeps the rule set it started
with, and its decision row names that revision. A rule set that does not validate is refused: the old one keeps
serving, and the refusal is logged (file, line, field: no patient data), counted in /metrics and shown in /readyz.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from service.engine.loader import load_ruleset
from service.engine.ruleset import RuleSet
from service.errors import RuleSetInvalid
from service.metrics import Metrics

log = logging.getLogger("service.rules")
Outcome = Literal["swapped", "unchanged", "refused"]


@dataclass(frozen=True)
class Reload:
    outcome: Outcome
    revision: str  # the revision served after the reload
    problems: tuple[str, ...] = ()
    at: datetime | None = None


def freeze_long_lived(*, collect: bool = False) -> None:
    """Move what exists now (the rule set and its value-set index: ~160,000 objects) out of the cyclic garbage
    collector's reach: gen-2 collections no longer walk it on every large call (issue 10 measured 148 ms of GC per
    call at 10,000 resources). After a swap, `collect` first lets the replaced rule set's cycles be freed; at
    start-up there is little cyclic garbage and a full collection would only cost time."""
    if collect:
        gc.unfreeze()
        gc.collect()
    gc.freeze()


def files_signature(*folders: Path | None) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime, size) of every file: a cheap test for "something changed", read every few seconds."""
    found = []
    for folder in folders:
        if folder is None or not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                stat = path.stat()
                found.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


class RuleSource:
    def __init__(
        self,
        ruleset: RuleSet,
        rules_dir: Path,
        site_dir: Path | None,
        metrics: Metrics,
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.current = ruleset
        self.rules_dir = rules_dir
        self.site_dir = site_dir
        self.metrics = metrics
        self.last_refusal: Reload | None = None
        self._signature = files_signature(rules_dir, site_dir)
        self._lock = threading.Lock()  # one reload at a time; calls never wait for it
        self._now = clock

    def changed_on_disk(self) -> bool:
        return files_signature(self.rules_dir, self.site_dir) != self._signature

    async def watch_forever(self, interval_seconds: float) -> None:
        """Reload when the files change (a lifespan task: every worker watches, so all pick up a change)."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                if await asyncio.to_thread(self.changed_on_disk):
                    await asyncio.to_thread(self.reload)
            except OSError as error:  # a folder being replaced: try again next time
                log.warning("rules folder could not be read", extra={"fields": {"error": type(error).__name__}})

    def reload(self) -> Reload:
        """Load the folders again; swap the new rule set in, or keep the old one and say why."""
        with self._lock:
            self._signature = files_signature(self.rules_dir, self.site_dir)
            try:
                fresh = load_ruleset(self.rules_dir, self.site_dir)
            except RuleSetInvalid as error:
                refused = Reload("refused", self.current.revision, tuple(str(p) for p in error.problems), self._now())
                self.last_refusal = refused
                self.metrics.rule_reloads.labels("refused").inc()
                fields = {"serving": self.current.revision, "problems": list(refused.problems)}
                log.error("changed rule set refused; the previous one keeps serving", extra={"fields": fields})
                return refused
            if fresh.revision == self.current.revision:
                self.metrics.rule_reloads.labels("unchanged").inc()
                self.last_refusal = None
                return Reload("unchanged", fresh.revision, at=self._now())
            before, self.current = self.current.revision, fresh  # one assignment: calls see old or new, whole
            self.last_refusal = None
            self.metrics.rule_reloads.labels("swapped").inc()
            self.metrics.ruleset.labels(fresh.revision).set(1)
            self.metrics.ruleset.labels(before).set(0)
            freeze_long_lived(collect=True)
            active = ", ".join(r.ref for r in fresh.active())
            log.info("rule set swapped", extra={"fields": {"from": before, "to": fresh.revision, "active": active}})
            return Reload("swapped", fresh.revision, at=self._now())
