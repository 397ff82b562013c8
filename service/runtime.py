"""What a request handler needs at run time, built once per app: settings, rules, clock and id factory.

The clock and the uuid factory are injected so tests and examples are deterministic.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from service.config import Settings
from service.engine.ruleset import RuleSet

if TYPE_CHECKING:
    from service.cdshooks.auth import JwtVerifier
    from service.cdshooks.fetch import FhirFetcher
    from service.cdshooks.issuers import IssuerRegistry
    from service.metrics import Metrics
    from service.store.db import Store
    from service.store.spool import DecisionSpool

Clock = Callable[[], datetime]
UuidFactory = Callable[[], str]


def system_clock() -> datetime:
    return datetime.now(UTC)


def random_uuid() -> str:
    return str(uuid.uuid4())


@dataclass
class Runtime:
    settings: Settings
    ruleset: RuleSet
    clock: Clock = system_clock
    new_uuid: UuidFactory = random_uuid
    issuers: IssuerRegistry | None = None
    verifier: JwtVerifier | None = None
    fetcher: FhirFetcher | None = None
    store: Store | None = None
    metrics: Metrics | None = None
    spool: DecisionSpool | None = None
