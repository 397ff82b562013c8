"""The store against SQLite and a real PostgreSQL server (the `postgres_url` fixture: CI's, or one the tests start
from the installed server binaries)."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from service.errors import UnknownCards
from service.store.db import Store, make_engine, migrate, report_csv
from service.store.decisionrow import DecisionRecord
from service.store.tables import DecisionRow
from tests.helpers import decision_record


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path) -> Store:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    else:
        engine = make_engine(request.getfixturevalue("postgres_url"))
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS feedback, decisions, seen_tokens, alembic_version"))
    migrate(engine)
    migrate(engine)  # idempotent
    yield Store(engine)
    engine.dispose()


def decision(card: str | None, rule: str | None = "r@1.0.0") -> DecisionRecord:
    return decision_record(card, rule, service_id="svc", created_at=datetime(2026, 11, 20, tzinfo=UTC), data_ms=1.0)


def test_decisions_feedback_and_report(store: Store) -> None:
    assert store.ping()
    store.write_decision(decision("card-1"))
    store.write_decision(decision("card-2"))
    store.write_decision(decision(None))
    now = datetime(2026, 11, 20, 10, tzinfo=UTC)
    item = {
        "card": "card-1",
        "outcome": "accepted",
        "outcomeTimestamp": "2026-11-20T10:00:00Z",
        "acceptedSuggestions": [{"id": "s1"}],
    }
    assert store.record_feedback("svc", [item, item], now) == 2  # both acknowledged ...
    assert store.record_feedback("svc", [item], now) == 1  # ... and again when it is sent again ...
    override = {
        "card": "card-2",
        "outcome": "overridden",
        "outcomeTimestamp": "2026-11-20T10:00:00Z",
        "overrideReason": {"reason": {"code": "patient-declines"}},
    }
    store.record_feedback("svc", [override], now)
    with pytest.raises(UnknownCards):
        store.record_feedback("other-service", [item], now)
    [row] = store.rule_report()
    assert row == {
        "rule": "r@1.0.0",
        "shown": 2,
        "accepted": 1,
        "overridden": 1,
        "acceptance_rate": 0.5,
        "override_reasons": {"patient-declines": 1},
        "override_categories": {"(none)": 1},  # no rule set to categorise with: as sent
    }
    assert report_csv([row]).splitlines()[1] == "r@1.0.0,2,1,1,0.5,patient-declines=1,(none)=1,,,,"
    assert store.count() == {"decisions": 3, "feedback": 2}  # ... but stored once
    assert store.rule_report(since=datetime(2027, 1, 1, tzinfo=UTC)) == []


def test_token_ids_are_remembered_until_they_expire(store: Store) -> None:
    noon = datetime(2026, 11, 20, 12, tzinfo=UTC)
    later = datetime(2026, 11, 20, 13, tzinfo=UTC)
    assert store.remember_token("iss|a", later, now=noon) is True
    assert store.remember_token("iss|a", later, now=noon) is False
    assert store.remember_token("iss|b", later, now=noon) is True
    assert store.remember_token(
        "iss|a", datetime(2026, 11, 20, 15, tzinfo=UTC), now=datetime(2026, 11, 20, 14, tzinfo=UTC)
    )


@pytest.mark.postgres
def test_the_service_end_to_end_on_postgres(make_app, tmp_path, postgres_url: str) -> None:
    """Hook call, decision log, feedback and report through the app, with PostgreSQL as its store."""
    url = postgres_url
    from fastapi.testclient import TestClient

    from tests.helpers import hook_request

    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS feedback, decisions, seen_tokens, alembic_version"))
    engine.dispose()
    app = make_app(database_url=url, spool_dir=tmp_path / "spool")  # never var/spool in the checkout
    with TestClient(app) as client:
        card = client.post("/cds-services/mscc-patient-view", json=hook_request("01-mscc-breast-cancer-leg-weakness"))
        card_body = card.json()["cards"][0]
        feedback = {
            "card": card_body["uuid"],
            "outcome": "accepted",
            "outcomeTimestamp": "2026-11-20T09:05:00Z",
            "acceptedSuggestions": [{"id": card_body["suggestions"][0]["uuid"]}],
        }
        assert client.post("/cds-services/mscc-patient-view/feedback", json={"feedback": [feedback]}).json() == {
            "stored": 1
        }
        assert client.get("/reports/rules").json()[0]["accepted"] == 1
        assert client.get("/readyz").json()["checks"]["database"] == "ok"


def test_migration_0004_keeps_the_first_copy_of_feedback_stored_twice_before(tmp_path) -> None:
    from alembic import command
    from alembic.config import Config

    from service.store.db import MIGRATIONS

    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
    store = Store(engine)
    old_row = decision("card-1").as_row()
    for later in ("site", "shadow_evaluated"):  # columns added after 0003
        del old_row[later]
    with engine.begin() as connection:
        connection.execute(DecisionRow.__table__.insert(), [old_row])
    with engine.begin() as connection:
        for _ in range(2):  # what 0003 allowed: the same feedback stored twice
            connection.execute(
                text(
                    "INSERT INTO feedback (received_at, service_id, card_uuid, decision_id, rule, outcome, "
                    "accepted_suggestions, outcome_timestamp) SELECT '2026-11-20 10:00:00', 'svc', 'card-1', id, "
                    "'r@1.0.0', 'accepted', '[]', '2026-11-20T10:00:00Z' FROM decisions"
                )
            )
    migrate(engine)
    assert store.count()["feedback"] == 1
    engine.dispose()
