"""What the routes need at run time, built once per app by `create_app`: every part is always there.

The clock and the uuid factory are injected so tests and examples are deterministic.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from service.config import Settings
from service.engine.ruleset import RuleSet

if TYPE_CHECKING:
    from service.cdshooks.auth import JwtVerifier
    from service.hookcalls import HookCalls
    from service.metrics import Metrics
    from service.rulesource import RuleSource
    from service.store.db import Store
    from service.store.spool import DecisionSpool

Clock = Callable[[], datetime]
UuidFactory = Callable[[], str]


def system_clock() -> datetime:
    return datetime.now(UTC)


def random_uuid() -> str:
    return str(uuid.uuid4())


_SEEDED_NAMESPACE = uuid.UUID("6f1c2a52-3f0e-4a8e-9d51-6d8a4b3c2e10")


def seeded_uuids(seed: str) -> UuidFactory:
    """A uuid factory that gives the same sequence for the same seed (examples and tests)."""
    counter = itertools.count()
    return lambda: str(uuid.uuid5(_SEEDED_NAMESPACE, f"{seed}/{next(counter)}"))


class ReseedableUuids:
    """Seeded uuids whose seed can be changed between calls: one app answers every example with the ids it
    would have had on its own (`reseed(example_id)` before each call)."""

    def __init__(self, seed: str = "") -> None:
        self._next = seeded_uuids(seed)

    def reseed(self, seed: str) -> None:
        self._next = seeded_uuids(seed)

    def __call__(self) -> str:
        return self._next()


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    rules: RuleSource  # the rule set served now (swapped whole on reload: service/rulesource.py)
    clock: Clock
    new_uuid: UuidFactory
    verifier: JwtVerifier | None  # None only in development mode: no JWT is checked
    store: Store
    spool: DecisionSpool
    metrics: Metrics
    hooks: HookCalls

    def attach_to(self, app: Any) -> None:
        """Make this the app's runtime: `Runtime.of(app)` finds it (the one place that knows where it is kept)."""
        app.state.runtime = self

    @staticmethod
    def of(app: Any) -> Runtime:
        """The runtime `create_app` attached to this Starlette app, typed."""
        runtime = getattr(app.state, "runtime", None)
        if not isinstance(runtime, Runtime):
            raise TypeError(f"no Runtime attached to {app!r}")
        return runtime

    @property
    def ruleset(self) -> RuleSet:
        """The rule set served at this moment; a caller that needs one for a whole task keeps the reference."""
        return self.rules.current
