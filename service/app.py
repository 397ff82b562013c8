"""The app factory: `create_app(settings)` wires routers, middleware and error handlers around a loaded rule set.

Everything that can be wrong is found here, before the app exists: a rule set that does not validate, an
issuers file that does not parse, a database that cannot be migrated. Start-up stops with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.exc import SQLAlchemyError

from service import __version__
from service.api import discovery, evaluate, feedback, hooks, ops, reports
from service.api.docs import install_docs
from service.api.errors import CatchAll, install_error_handlers
from service.api.evaluategate import EvaluateGate
from service.api.limits import BodySizeLimit
from service.api.openapi import install_openapi
from service.api.paths import TolerantPaths
from service.api.security import AuthenticateFirst
from service.cdshooks.auth import JwtVerifier
from service.cdshooks.call import CallOptions
from service.cdshooks.fetch import FhirFetcher
from service.cdshooks.issuers import IssuerRegistry
from service.cdshooks.jwks import JwksCache
from service.cdshooks.replay import HostReplayTableOpener
from service.config import Settings
from service.engine.loader import load_ruleset
from service.gcpolicy import CollectorOnTimer
from service.hookcalls import HookCalls
from service.logs import configure_logging, raised_at
from service.metrics import Metrics
from service.rulesource import RuleSource, freeze_long_lived
from service.runtime import Clock, Runtime, UuidFactory, random_uuid, system_clock
from service.store.breaker import StorageBreaker, StorageSkipped
from service.store.db import Store, make_engine, migrate
from service.store.decisions import DecisionLog
from service.store.spool import DecisionSpool

log = logging.getLogger("service")

DESCRIPTION = """\
CDS Hooks 2.0 service that looks for warning signs of spinal metastasis and metastatic spinal cord compression
(MSCC) in a patient's FHIR R4 Conditions and Observations, and answers with a card that recommends an urgent
whole-spine MRI and a referral to the MSCC coordinator / spinal MDT, naming the rule version and the patient data
behind it. Rules are versioned files in `rules/`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = system_clock,
    new_uuid: UuidFactory = random_uuid,
    transport: httpx.AsyncBaseTransport | None = None,
    run_migrations: bool = True,
) -> FastAPI:
    """Build the app. `transport` replaces the network for outbound calls (JWKS, FHIR) in tests;
    `run_migrations=False` when the server already migrated once, before its workers started."""
    settings = settings or Settings()
    ruleset = load_ruleset(settings.rules_dir, settings.site_dir)
    issuers = IssuerRegistry.load(settings.issuers_file)
    client = httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(settings.fetch_timeout_seconds),
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
        follow_redirects=False,
        trust_env=False,
    )
    engine = make_engine(settings.database_url)
    if run_migrations:
        migrate(engine)
    metrics = Metrics()
    metrics.ruleset.labels(ruleset.revision).set(1)
    store = Store(engine)
    spool = DecisionSpool(settings.decision_spool_dir, fsync=settings.decision_fsync)

    breaker = StorageBreaker()  # storage that just failed is not waited on by hook calls
    host_table = settings.replay_mode == "host" and not settings.dev_mode
    replay_tables = HostReplayTableOpener(settings.replay_table_path) if host_table else None
    if replay_tables is not None:
        replay_tables.table()  # opened at start-up; a folder that refuses it does not stop the worker

    async def remember_token(token_id: str, expires: datetime) -> bool:
        """The replay check every worker shares: the host table, or the database table replicas share. When the
        host table has no room or cannot be opened, or storage fails, the next one down answers (counted and
        logged): the verifier's per-process check stands alone only when storage fails too, and decision support
        never waits on it."""
        if replay_tables is not None:
            now = clock()
            seen, fallback = replay_tables.remember(token_id, int(expires.timestamp()), int(now.timestamp()))
            if seen is not None:
                return seen
            metrics.replay_fallbacks.labels(fallback).inc()
        try:
            if breaker.open:
                raise StorageSkipped()
            return await asyncio.to_thread(store.remember_token, token_id, expires)
        except (SQLAlchemyError, StorageSkipped) as error:
            if isinstance(error, SQLAlchemyError):
                breaker.failed()
            metrics.replay_fallbacks.labels("storage").inc()
            log.warning(
                "replay check used this process only: storage unavailable",
                extra={"fields": {"error": type(error).__name__}},
            )
            return True

    verifier = None
    if not settings.dev_mode:
        verifier = JwtVerifier(
            issuers, JwksCache(client), settings.public_base_url or "", lambda: clock().timestamp(), remember_token
        )
    fetcher = FhirFetcher(
        client,
        issuers,
        timeout_seconds=settings.fetch_timeout_seconds,
        max_pages=settings.fetch_max_pages,
        on_failure=lambda reason: metrics.fetch_failures.labels(reason).inc(),
    )
    options = CallOptions(
        settings.strict_fhir, settings.shadow_drafts, settings.allow_clock_override, ZoneInfo(settings.timezone)
    )
    decisions = DecisionLog(store, spool, metrics, breaker)
    rules = RuleSource(ruleset, settings.rules_dir, settings.site_dir, metrics, clock)
    hook_calls = HookCalls(
        rules,
        options,
        clock=clock,
        new_uuid=new_uuid,
        fetcher=fetcher,
        decisions=decisions,
        metrics=metrics,
        patient_hash_salt=settings.patient_hash_salt,
    )
    runtime = Runtime(settings, rules, clock, new_uuid, issuers, verifier, store, spool, metrics, hook_calls)
    if settings.dev_mode:
        log.warning("DEVELOPMENT MODE: JWT verification is OFF and requests may set the evaluation time")

    async def drain_journal() -> None:
        """Move journaled decision rows to storage in batches (and rows stopped workers left); while storage
        refuses them, retry every MSCC_SPOOL_DRAIN_SECONDS instead."""
        while True:
            try:
                written = await asyncio.to_thread(decisions.flush)
            except Exception as error:  # a bug in a drain must not stop this worker's drains for good
                fields = {"error": type(error).__name__, **raised_at(error)}
                log.error("decision journal drain failed; retrying", extra={"fields": fields})
                await asyncio.sleep(settings.spool_drain_seconds)
                continue
            if spool.stalled:
                metrics.storage_refusals.inc()
                log.warning(
                    "decision rows wait on disk: storage refused them",
                    extra={"fields": {"rows": spool.unwritten, "written": written}},
                )
                await asyncio.sleep(settings.spool_drain_seconds)
                continue
            await asyncio.sleep(settings.decision_flush_seconds)

    async def watch_rules() -> None:
        """Reload the rule set when its files change (every worker watches, so all pick up a change)."""
        while True:
            await asyncio.sleep(settings.rules_reload_seconds)
            try:
                if await asyncio.to_thread(rules.changed_on_disk):
                    await asyncio.to_thread(rules.reload)
            except OSError as error:  # a folder being replaced: try again next time
                log.warning("rules folder could not be read", extra={"fields": {"error": type(error).__name__}})

    collector = CollectorOnTimer(settings.gc_interval_seconds)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        drainer = asyncio.create_task(drain_journal())
        watcher = asyncio.create_task(watch_rules()) if settings.rules_reload_seconds > 0 else None
        on_hangup(lambda: asyncio.ensure_future(asyncio.to_thread(rules.reload)))
        freeze_long_lived()  # everything built at start-up lives as long as the process
        collector.start()
        yield
        collector.stop()
        drainer.cancel()
        if watcher is not None:
            watcher.cancel()
        await asyncio.to_thread(decisions.flush)  # a worker stopping leaves nothing behind when it can
        spool.close()
        if replay_tables is not None:
            replay_tables.close()
        await client.aclose()
        engine.dispose()

    app = FastAPI(
        title="MSCC warning signs CDS Service",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # served from local assets by install_docs
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    for router in (discovery.router, hooks.router, feedback.router, evaluate.router, reports.router, ops.router):
        app.include_router(router)
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)
    app.add_middleware(AuthenticateFirst)  # innermost: behind CORS (refusals carry its headers), before the routes
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        allow_private_network=True,  # Chrome's Private Network Access preflight (a public EHR page, a local service)
        max_age=600,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(EvaluateGate, settings=settings)  # refuses before a body is read: the hooks come first
    app.add_middleware(TolerantPaths)  # before anything reads the path
    app.add_middleware(CatchAll)  # outermost of ours: nothing below it can drop a connection with a 500
    log.info("serving rule set %s with %s", ruleset.revision, ", ".join(r.ref for r in ruleset.active()))
    return app


def on_hangup(reload: Callable[[], object]) -> None:
    """SIGHUP reloads the rules in a single-process server. Under `--workers N` uvicorn's supervisor takes SIGHUP
    and replaces each worker only once its replacement has started, so a broken rule set never replaces a working
    one there either. Outside the main thread (tests) there is no signal to handle."""
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)
    except (RuntimeError, ValueError, NotImplementedError):
        return


def serve_app() -> FastAPI:
    """The factory `python -m service serve` gives uvicorn: each worker process configures its own JSON logging
    (a worker does not inherit the parent's) and skips the migrations the parent already ran once."""
    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings, run_migrations=False)
