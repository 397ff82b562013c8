"""Storage: connect, migrate (Alembic, at start-up), and the reads and writes the service needs.

SQLite (the default) runs in WAL mode with a busy timeout so several uvicorn workers can share the file;
PostgreSQL is used as given. Every method is synchronous: callers run them in a worker thread.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, delete, event, func, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from service.errors import UnknownCards, UnknownSuggestions
from service.store.decisionrow import DecisionRecord
from service.store.tables import DecisionRow, FeedbackRow, SeenTokenRow

MIGRATIONS = Path(__file__).parent / "migrations"
# SQLite errors after which a connection cannot be trusted to write again (files made read-only, disk trouble).
_CANNOT_WRITE = ("readonly database", "disk i/o error", "unable to open database", "database disk image is malformed")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 5}, pool_pre_ping=True, json_serializer=_json_text)
        else:  # in memory: one shared connection, or every thread would see its own empty database
            engine = create_engine(
                url, connect_args={"check_same_thread": False}, poolclass=StaticPool, json_serializer=_json_text
            )

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA busy_timeout=5000")
            # SQLite opens a write-protected file read-only without a word, and such a connection would stay in
            # the pool after the file is writable again: prove it can write (a no-op header write), or fail now.
            try:
                version = cursor.execute("PRAGMA user_version").fetchone()[0]
                cursor.execute(f"PRAGMA user_version = {int(version)}")
            except Exception:
                # Close it now, cursor first: SQLite keeps a closed connection open while a statement is alive,
                # and an open read-only connection keeps the file's shared WAL index read-only for every later
                # connection of this process, even after the file is writable again.
                cursor.close()
                connection.close()
                raise
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "handle_error")
        def _discard_unwritable(context: Any) -> None:
            if any(sign in str(context.original_exception).lower() for sign in _CANNOT_WRITE):
                context.is_disconnect = True  # the pool drops this connection; the next one is made afresh

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # A database that is unreachable must fail a write in seconds, not hang it: with MSCC_DECISION_WRITE=database
    # the answer path writes, and falls back to the journal on failure.
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=5,
        connect_args={"connect_timeout": 3},
        json_serializer=_json_text,
    )


def _json_text(value: Any) -> str:
    """JSON columns written by orjson (the decision log writes six per row, in batches); what orjson refuses (a
    lone surrogate, a huge integer) is written as the standard library writes it."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


_MIGRATION_LOCK = 7_264_353  # any constant: replicas starting together take turns


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest revision (idempotent; replicas on PostgreSQL take an advisory lock)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    def can_write(self) -> bool:
        """Whether a write is possible now: a write statement that changes nothing (readiness must not lie)."""
        try:
            with self.engine.begin() as connection:
                connection.execute(text("UPDATE seen_tokens SET expires_at = expires_at WHERE 1 = 0"))
            return True
        except SQLAlchemyError:
            return False

    def remember_token(self, token_id: str, expires_at: datetime, now: datetime | None = None) -> bool:
        """Record a JWT id; False when it was already recorded (a replay), on any replica."""
        try:
            with self.sessions.begin() as session:
                purge_before = now or datetime.now(UTC)
                session.execute(delete(SeenTokenRow).where(SeenTokenRow.expires_at < purge_before))
                session.add(SeenTokenRow(token_id=token_id, expires_at=expires_at))
            return True
        except IntegrityError:
            return False

    def write_decision(self, record: DecisionRecord, attempts: int = 3, backoff: float = 0.2) -> None:
        """Insert one decision, retrying transient failures; raise the last error when every attempt fails."""
        for attempt in range(attempts):
            try:
                with self.sessions.begin() as session:
                    session.add(DecisionRow(**record.as_row()))
                return
            except SQLAlchemyError:
                if attempt == attempts - 1:
                    raise
                time.sleep(backoff * (2**attempt))

    def write_decision_rows(self, rows: list[dict[str, Any]]) -> None:
        """Insert a batch of decision rows in one transaction; a row whose id is stored already is skipped (a
        journal drained twice stores each row once). Raises SQLAlchemyError when storage fails."""
        if not rows:
            return
        statement = (postgresql_insert if self.engine.dialect.name == "postgresql" else sqlite_insert)(DecisionRow)
        with self.engine.begin() as connection:
            connection.execute(statement.on_conflict_do_nothing(index_elements=["id"]), rows)

    def has_decision(self, decision_id: str) -> bool:
        with self.sessions() as session:
            return session.get(DecisionRow, decision_id) is not None

    def decision_by_card(self, session: Session, card_uuid: str) -> DecisionRow | None:
        return session.scalar(select(DecisionRow).where(DecisionRow.card_uuid == card_uuid))

    def record_feedback(self, service_id: str, items: list[dict[str, Any]], received_at: datetime) -> int:
        """Store every item or none: unknown cards or suggestions refuse the whole batch. An item already stored
        (same card, outcome and outcome time) is acknowledged again, never stored twice; returns the items held."""
        try:
            return self._record_feedback(service_id, items, received_at)
        except IntegrityError:  # the same item arrived on another worker at the same moment: it is stored now
            return self._record_feedback(service_id, items, received_at)

    def _record_feedback(self, service_id: str, items: list[dict[str, Any]], received_at: datetime) -> int:
        with self.sessions.begin() as session:
            rows = []
            held: set[tuple[str, str, str]] = set()
            unknown: list[str] = []
            bad_suggestions: list[str] = []
            for item in items:
                decision = self.decision_by_card(session, item["card"])
                if decision is None or decision.service_id != service_id:
                    unknown.append(item["card"])
                    continue
                offered = {s["uuid"] for s in decision.suggestions}
                accepted = [s["id"] for s in item.get("acceptedSuggestions") or []]
                bad_suggestions += [s for s in accepted if s not in offered]
                reason = (item.get("overrideReason") or {}).get("reason") or {}
                identity = (item["card"], item["outcome"], item["outcomeTimestamp"])
                if identity in held or self._feedback_stored(session, identity):
                    held.add(identity)
                    continue
                held.add(identity)
                rows.append(
                    FeedbackRow(
                        received_at=received_at,
                        service_id=service_id,
                        card_uuid=item["card"],
                        decision_id=decision.id,
                        rule=decision.lead_rule,
                        outcome=item["outcome"],
                        accepted_suggestions=accepted,
                        override_system=reason.get("system"),
                        override_code=reason.get("code"),
                        override_display=reason.get("display"),
                        user_comment=(item.get("overrideReason") or {}).get("userComment"),
                        outcome_timestamp=item["outcomeTimestamp"],
                    )
                )
            if unknown:
                raise UnknownCards(unknown)
            if bad_suggestions:
                raise UnknownSuggestions(bad_suggestions)
            session.add_all(rows)
            return len(items)

    @staticmethod
    def _feedback_stored(session: Session, identity: tuple[str, str, str]) -> bool:
        card, outcome, at = identity
        query = select(FeedbackRow.id).where(
            FeedbackRow.card_uuid == card, FeedbackRow.outcome == outcome, FeedbackRow.outcome_timestamp == at
        )
        return session.scalar(query) is not None

    def count(self) -> dict[str, int]:
        with self.sessions() as session:
            return {
                "decisions": session.scalar(select(func.count()).select_from(DecisionRow)) or 0,
                "feedback": session.scalar(select(func.count()).select_from(FeedbackRow)) or 0,
            }

    def rule_timeline(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Per day and rule version: cards shown, accepted and overridden (feedback counted on its card's day)."""
        with self.sessions() as session:
            query = select(DecisionRow.created_at, DecisionRow.lead_rule, DecisionRow.card_uuid).where(
                DecisionRow.card_uuid.is_not(None)
            )
            if since is not None:
                query = query.where(DecisionRow.created_at >= since)
            days: dict[tuple[str, str], Counter[str]] = {}
            card_day: dict[str, tuple[str, str]] = {}
            for created, rule, card in session.execute(query):
                if rule is None or card is None:
                    continue
                key = (created.date().isoformat(), rule)
                days.setdefault(key, Counter())["shown"] += 1
                card_day[card] = key
            seen: set[tuple[str, str]] = set()
            for card, outcome in session.execute(select(FeedbackRow.card_uuid, FeedbackRow.outcome)):
                when = card_day.get(card)
                if when is not None and (card, outcome) not in seen:
                    seen.add((card, outcome))
                    days[when][outcome] += 1
        return [
            {"day": day, "rule": rule, "shown": c["shown"], "accepted": c["accepted"], "overridden": c["overridden"]}
            for (day, rule), c in sorted(days.items())
        ]

    def _shadow_report(self, since: datetime | None) -> dict[str, dict[str, Any]]:
        with self.sessions() as session:
            query = (
                select(DecisionRow.id, DecisionRow.shadow_evaluated, DecisionRow.shadow_fired, DecisionRow.rules_fired)
                .where(DecisionRow.shadow_fired.is_not(None))
                .order_by(DecisionRow.created_at)
            )
            if since is not None:
                query = query.where(DecisionRow.created_at >= since)
            return _shadow_tally(list(session.execute(query)))

    def rule_report(self, since: datetime | None = None, classify: ReasonReader | None = None) -> list[dict[str, Any]]:
        """Per rule version: cards shown, cards accepted / overridden (each card counted once), and the override
        reasons, by the service's own reason and by category (`classify` maps a stored Coding to both; without
        it, the code as sent)."""
        read = classify or _as_sent
        with self.sessions() as session:
            decisions = select(DecisionRow.lead_rule, DecisionRow.card_uuid).where(DecisionRow.card_uuid.is_not(None))
            if since is not None:
                decisions = decisions.where(DecisionRow.created_at >= since)
            shown: Counter[str] = Counter()
            cards: dict[str, str] = {}
            for rule, card in session.execute(decisions):
                if rule is None or card is None:
                    continue
                shown[rule] += 1
                cards[card] = rule
            accepted: dict[str, set[str]] = {}
            overridden: dict[str, set[str]] = {}
            reasons: dict[str, Counter[str]] = {}
            categories: dict[str, Counter[str]] = {}
            feedback = select(
                FeedbackRow.card_uuid,
                FeedbackRow.outcome,
                FeedbackRow.override_system,
                FeedbackRow.override_code,
                FeedbackRow.override_display,
            )
            for card, outcome, system, code, display in session.execute(feedback):
                rule = cards.get(card)
                if rule is None:
                    continue
                target = accepted if outcome == "accepted" else overridden
                target.setdefault(rule, set()).add(card)
                if outcome == "overridden":
                    category, reason = read(system, code, display)
                    fallback = "(none given)" if code is None else "(category only)" if category else code
                    reasons.setdefault(rule, Counter())[reason or fallback] += 1
                    categories.setdefault(rule, Counter())[category or "(none)"] += 1
        shadow = self._shadow_report(since)
        report = [
            {
                "rule": rule,
                "shown": 0,
                "accepted": 0,
                "overridden": 0,
                "acceptance_rate": 0.0,
                "override_reasons": {},
                "override_categories": {},
                **shadow[rule],
            }
            for rule in sorted(shadow)
        ]
        for rule in sorted(shown):
            n_accepted = len(accepted.get(rule, ()))
            report.append(
                {
                    "rule": rule,
                    "shown": shown[rule],
                    "accepted": n_accepted,
                    "overridden": len(overridden.get(rule, ())),
                    "acceptance_rate": round(n_accepted / shown[rule], 3),
                    "override_reasons": dict(reasons.get(rule, Counter()).most_common()),
                    "override_categories": dict(categories.get(rule, Counter()).most_common()),
                }
            )
        return report


SHADOW_IDS_SHOWN = 50  # the report lists this many disagreeing decisions per draft, most recent first


def _shadow_tally(rows: list[Any]) -> dict[str, dict[str, Any]]:
    """Per draft: calls evaluated, fired, agreements with its rule's active version, and the decisions where they
    disagreed (the draft would have given a card the active rules did not, or not given one they did)."""
    tally: dict[str, dict[str, Any]] = {}
    for decision_id, evaluated, fired, active_fired in rows:
        active = {ref.split("@")[0] for ref in active_fired or []}
        for draft in evaluated or fired or []:
            entry = tally.setdefault(
                draft, {"shadow_evaluated": 0, "shadow_fired": 0, "shadow_agreements": 0, "disagreements": []}
            )
            would = draft in (fired or [])
            entry["shadow_evaluated"] += 1 if evaluated is not None else 0
            entry["shadow_fired"] += int(would)
            if evaluated is None:
                continue  # a row from before migration 0006: fired is known, agreement is not
            if would == (draft.split("@")[0] in active):
                entry["shadow_agreements"] += 1
            else:
                entry["disagreements"].append(decision_id)
    for entry in tally.values():
        entry["shadow_disagreements"] = len(entry["disagreements"])
        entry["disagreement_ids"] = entry.pop("disagreements")[-SHADOW_IDS_SHOWN:][::-1]
    return tally


ReasonReader = Callable[[str | None, str | None, str | None], tuple[str | None, str | None]]


def _as_sent(system: str | None, code: str | None, display: str | None) -> tuple[str | None, str | None]:
    """No rule set to read reasons with: the code as the client sent it, no category."""
    return None, code


def report_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    shadow = ["shadow_evaluated", "shadow_fired", "shadow_agreements", "shadow_disagreements"]
    tallies = ["override_reasons", "override_categories"]
    columns = ["rule", "shown", "accepted", "overridden", "acceptance_rate", *tallies, *shadow]
    writer.writerow(columns)
    for row in rows:
        counted = [";".join(f"{k}={v}" for k, v in row[t].items()) for t in tallies]
        writer.writerow([*(row[c] for c in columns[:5]), *counted, *(row.get(c, "") for c in shadow)])
    return out.getvalue()
