"""The gate in front of POST /evaluate: a tester's tool that must never cost the hooks their answers.

Pure ASGI, outside the body-size limit, so a refusal costs no body read and no JSON parse (FastAPI reads and parses
a body before any dependency runs; a flood of 50,000-entry Bundles refused by a dependency still parsed each one
on the event loop the hooks share). In order:
1. in production the endpoint is closed unless `MSCC_OPERATOR_TOKEN` is set, and then it needs the token (401);
2. a declared body over `MSCC_EVALUATE_MAX_BYTES` is a 413 before a byte of it is read;
3. at most `MSCC_EVALUATE_CONCURRENCY` evaluations at once, and all of them together may use at most
   `MSCC_EVALUATE_TIME_SHARE` of the worker's time (a budget refilled with the clock, one second of burst):
   beyond either, 503 with `Retry-After`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.deps import carries_operator_token
from service.api.errors import send_error
from service.config import Settings

PATH = "/evaluate"
BURST_SECONDS = 1.0  # a few dozen evaluations run without waiting; a flood meets the share at once


class TimeBudget:
    """Seconds of work allowed: `share` of every second that passes, up to `burst` saved."""

    def __init__(self, share: float, burst: float = BURST_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.share = share
        self.burst = burst
        self._clock = clock
        self._balance = burst
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._balance = min(self.burst, self._balance + (now - self._at) * self.share)
        self._at = now

    def available(self) -> bool:
        self._refill()
        return self._balance > 0

    def charge(self, seconds: float) -> None:
        """Spend `seconds` of work that just ended. Idle time before it is saved up to the burst; the call's own
        time earns its share too, so with a share of 1 (development mode) a long call never refuses the next."""
        now = self._clock()
        started = max(self._at, now - seconds)
        self._balance = min(self.burst, self._balance + (started - self._at) * self.share)
        self._balance = min(self.burst, self._balance + (now - started) * self.share - seconds)
        self._at = now

    def retry_after(self) -> int:
        """Whole seconds until the budget is positive again."""
        self._refill()
        return max(1, math.ceil(-self._balance / self.share)) if self._balance <= 0 else 1


class EvaluateGate:
    def __init__(self, app: ASGIApp, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.token = settings.operator_token
        self.closed = not settings.dev_mode and settings.operator_token is None
        self.max_bytes = settings.evaluate_max_bytes
        self.slots = settings.evaluate_concurrency
        self.budget = TimeBudget(settings.evaluate_share, clock=clock)
        self._clock = clock
        self._running = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("path") != PATH:
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            status, code, message, headers = refusal
            await send_error(send, status, code, message, headers)
            return
        self._running += 1
        started = self._clock()
        try:
            await self.app(scope, receive, send)
        finally:
            self._running -= 1
            self.budget.charge(self._clock() - started)

    def _refusal(self, scope: Scope) -> tuple[int, str, str, tuple[tuple[bytes, bytes], ...]] | None:
        headers = dict(scope.get("headers", []))
        bearer = ((b"www-authenticate", b"Bearer"),)
        if self.closed:
            return (
                401,
                "unauthorized",
                "POST /evaluate is closed in production until MSCC_OPERATOR_TOKEN is set",
                bearer,
            )
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if self.token is not None and not carries_operator_token(authorization, self.token):
            message = "this endpoint needs the operator token: Authorization: Bearer <MSCC_OPERATOR_TOKEN>"
            return 401, "unauthorized", message, bearer
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return 413, "payload_too_large", f"a Bundle to evaluate is at most {self.max_bytes} bytes", ()
        if self._running >= self.slots:
            return (
                503,
                "service_unavailable",
                "busy with other evaluations; hook calls come first: try again",
                ((b"retry-after", b"1"),),
            )
        if not self.budget.available():
            wait = str(self.budget.retry_after()).encode()
            message = "evaluations have used their share of this worker's time; hook calls come first: try again"
            return 503, "service_unavailable", message, ((b"retry-after", wait),)
        return None
