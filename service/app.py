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
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI
from fastapi.middleware import Middleware
from fastapi.middleware.cors import CORSMiddleware

from service import __version__
from service.api import discovery, explain, feedback, hooks, ops, reports
from service.api.docs import install_docs
from service.api.errors import CatchAll, install_error_handlers
from service.api.explaingate import EvaluateGate
from service.api.limits import BodySizeLimit
from service.api.mediatype import JsonBodiesOnly
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
from service.logs import configure_logging
from service.metrics import Metrics
from service.replaycheck import ReplayCheck
from service.rulesource import RuleSource, freeze_long_lived
from service.runtime import Clock, Runtime, UuidFactory, random_uuid, system_clock
from service.store.breaker import StorageBreaker
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
    client = outbound_client(settings, transport)
    engine = make_engine(settings.database_url)
    if run_migrations:
        migrate(engine)
    metrics = Metrics()
    metrics.ruleset.labels(ruleset.revision).set(1)
    store = Store(engine)
    spool = DecisionSpool(settings.decision_spool_dir, fsync=settings.decision_fsync)
    breaker = StorageBreaker()  # storage that just failed is not waited on by hook calls
    host_table = settings.replay_mode == "host" and not settings.dev_mode
    replay = ReplayCheck(
        HostReplayTableOpener(settings.replay_table_path) if host_table else None, store, breaker, metrics, clock
    )
    verifier = None
    if not settings.dev_mode:
        verifier = JwtVerifier(
            issuers, JwksCache(client), settings.public_base_url or "", lambda: clock().timestamp(), replay.remember
        )
    fetcher = FhirFetcher(
        client,
        issuers,
        timeout_seconds=settings.fetch_timeout_seconds,
        max_pages=settings.fetch_max_pages,
        on_failure=metrics.count_fetch_failure,
    )
    options = CallOptions(
        settings.strict_fhir, settings.shadow_drafts, settings.allow_clock_override, ZoneInfo(settings.timezone)
    )
    decisions = DecisionLog(
        store,
        spool,
        metrics,
        breaker,
        database_first=settings.decision_write == "database",
        shared_root=settings.spool_shared_root,
        adopt_after=settings.spool_adopt_seconds,
    )
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
    runtime = Runtime(settings, rules, clock, new_uuid, verifier, store, spool, metrics, hook_calls)
    if settings.dev_mode:
        log.warning("DEVELOPMENT MODE: JWT verification is OFF and requests may set the evaluation time")
    collector = CollectorOnTimer(settings.gc_interval_seconds)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        """What runs while the app serves: the replay table open, the journal's drainer, the rules watcher, the
        collector's timer; on the way out each is stopped and every resource closed, the journal drained first."""
        replay.open()
        tasks = [
            asyncio.create_task(decisions.drain_forever(settings.decision_flush_seconds, settings.spool_drain_seconds))
        ]
        if settings.rules_reload_seconds > 0:
            tasks.append(asyncio.create_task(rules.watch_forever(settings.rules_reload_seconds)))
        on_hangup(lambda: asyncio.ensure_future(asyncio.to_thread(rules.reload)))
        freeze_long_lived()  # everything built at start-up lives as long as the process
        collector.start()
        yield
        collector.stop()
        for task in tasks:
            task.cancel()
        await asyncio.to_thread(decisions.flush)  # a worker stopping leaves nothing behind when it can
        spool.close()
        replay.close()
        await client.aclose()
        engine.dispose()

    app = FastAPI(
        title="MSCC warning signs CDS Service",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # served from local assets by install_docs
        redoc_url=None,
        lifespan=lifespan,
        middleware=middleware(settings),
    )
    runtime.attach_to(app)
    for router in (discovery.router, hooks.router, feedback.router, explain.router, reports.router, ops.router):
        app.include_router(router)
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)
    log.info("serving rule set %s with %s", ruleset.revision, ", ".join(r.ref for r in ruleset.active()))
    return app


def middleware(settings: Settings) -> list[Middleware]:
    """Outermost first: every request passes them in this order."""
    return [
        Middleware(CatchAll),  # nothing below it can drop a connection with a 500
        Middleware(TolerantPaths),  # before anything reads the path
        Middleware(EvaluateGate, settings=settings),  # refuses before a body is read: the hooks come first
        Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes),
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            allow_private_network=True,  # Chrome's Private Network Access preflight (public EHR page, local service)
            max_age=600,
        ),
        Middleware(AuthenticateFirst),  # behind CORS (refusals carry its headers), before the routes
        Middleware(JsonBodiesOnly),  # after the caller is known: 404, 401, then 415
    ]


def outbound_client(settings: Settings, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    """The one HTTP client for key sets and FHIR servers: bounded, no redirects, no proxy settings from the
    environment (the allow-lists decide where it goes)."""
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(settings.fetch_timeout_seconds),
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
        follow_redirects=False,
        trust_env=False,
    )


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
