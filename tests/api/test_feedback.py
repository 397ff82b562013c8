"""Feedback as CDS Hooks 2.0 defines it: stored every item or none, surviving restarts, and reported per rule."""

import json
import logging
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from service.config import PROJECT_ROOT
from service.store.decisionrow import DecisionRecord
from tests.helpers import (
    CDSHOOKS,
    active_ref,
    decision_record,
    hook_request,
    load_json,
    new_version,
    outcome_details,
    outcome_message,
    runtime_of,
)

URL = "/cds-services/mscc-patient-view"


@pytest.fixture
def make_client(make_app):
    """A client of the app over this test's database; a second one is the same service restarted."""

    def build(seed: str = "fb", feedback_wait_seconds: float = 0.1, **settings: object) -> TestClient:
        return TestClient(make_app(seed=seed, feedback_wait_seconds=feedback_wait_seconds, **settings))

    return build


def card_from(client: TestClient, example: str = "01-mscc-breast-cancer-leg-weakness") -> dict:
    return client.post(URL, json=hook_request(example)).json()["cards"][0]


def accepted(card: dict) -> dict:
    return {
        "card": card["uuid"],
        "outcome": "accepted",
        "outcomeTimestamp": "2026-11-20T09:05:00Z",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
    }


def overridden(card: dict, code: str = "mri-done-or-booked") -> dict:
    return {
        "card": card["uuid"],
        "outcome": "overridden",
        "outcomeTimestamp": "2026-11-20T09:06:00Z",
        "overrideReason": {
            "reason": {
                "code": code,
                "system": "https://mscc-cds.example.org/CodeSystem/override-reason",
                "display": "MRI of the spine already done or booked",
            },
            "userComment": "MRI booked yesterday",
        },
    }


def test_feedback_is_stored_and_survives_a_restart(make_client) -> None:
    with make_client("one") as client:
        critical = card_from(client)
        warning = card_from(client, "03-prostate-cancer-bone-mets-new-back-pain")
        answer = client.post(f"{URL}/feedback", json={"feedback": [accepted(critical), overridden(warning)]})
        assert answer.status_code == 200
        assert answer.json() == {"stored": 2}
    with make_client("two") as restarted:
        report = {r["rule"]: r for r in restarted.get("/reports/rules").json()}
    assert report[active_ref("mscc-suspected")] == {
        "rule": active_ref("mscc-suspected"),
        "shown": 1,
        "accepted": 1,
        "overridden": 0,
        "acceptance_rate": 1.0,
        "override_reasons": {},
        "override_categories": {},
    }
    # the service's own code, as clients offered it before the HL7 categories, is still read, and categorised
    assert report[active_ref("spinal-metastasis-pain")]["override_reasons"] == {"mri-done-or-booked": 1}
    assert report[active_ref("spinal-metastasis-pain")]["override_categories"] == {"cds-not-applicable": 1}


def test_cards_offer_hl7_categories_and_feedback_maps_them_back(make_client) -> None:
    hl7 = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
    with make_client() as client:
        cards = [card_from(client) for _ in range(4)]
        offered = cards[0]["overrideReasons"]
        assert {r["system"] for r in offered} == {hl7}
        assert [r["code"] for r in offered] == [
            "cds-not-applicable",
            "cds-not-applicable",
            "cds-not-applicable",
            "does-not-align-preferences",
            "recipient-concerns-outcomes",
        ]
        assert len({r["display"] for r in offered}) == len(offered)  # the display tells the three apart
        echoed = [
            offered[1],  # as offered: category and the service's reason
            offered[3],  # a category only one reason has: known without the display
            {"system": hl7, "code": "cds-not-applicable", "display": "Not relevant"},  # a client's own words
            {"system": "urn:example:ehr-reasons", "code": "busy"},  # another system: kept as sent
        ]
        feedback = [
            {**overridden(card), "overrideReason": {"reason": reason}}
            for card, reason in zip(cards, echoed, strict=True)
        ]
        assert client.post(f"{URL}/feedback", json={"feedback": feedback}).status_code == 200
        [row] = [r for r in client.get("/reports/rules").json() if r["rule"] == active_ref("mscc-suspected")]
    assert row["override_reasons"] == {"under-spinal-team": 1, "patient-declines": 1, "(category only)": 1, "busy": 1}
    assert row["override_categories"] == {"cds-not-applicable": 2, "does-not-align-preferences": 1, "(none)": 1}


def test_report_as_csv(make_client) -> None:
    with make_client() as client:
        card = card_from(client)
        client.post(f"{URL}/feedback", json={"feedback": [overridden(card, "other-cause-known")]})
        answer = client.get("/reports/rules", params={"format": "csv"})
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.text.splitlines() == [
        "rule,shown,accepted,overridden,acceptance_rate,override_reasons,override_categories,"
        "shadow_evaluated,shadow_fired,shadow_agreements,shadow_disagreements",
        f"{active_ref('mscc-suspected')},1,0,1,0.0,other-cause-known=1,cds-not-applicable=1,,,,",
    ]


def test_unknown_card_is_404_and_nothing_is_stored(make_client) -> None:
    with make_client() as client:
        card = card_from(client)
        ghost = {**accepted(card), "card": "00000000-0000-0000-0000-000000000000"}
        answer = client.post(f"{URL}/feedback", json={"feedback": [accepted(card), ghost]})
        assert answer.status_code == 404
        assert outcome_details(answer) == ["00000000-0000-0000-0000-000000000000"]
        assert runtime_of(client.app).store.count()["feedback"] == 0


def test_a_suggestion_the_card_did_not_offer_is_400(make_client) -> None:
    with make_client() as client:
        card = card_from(client)
        bad = {**accepted(card), "acceptedSuggestions": [{"id": "not-offered"}]}
        assert client.post(f"{URL}/feedback", json={"feedback": [bad]}).status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"feedback": []},
        {"feedback": [{"card": "x", "outcome": "maybe", "outcomeTimestamp": "2026-11-20T09:00:00Z"}]},
        {"feedback": [{"card": "x", "outcome": "accepted", "outcomeTimestamp": "yesterday"}]},
    ],
)
def test_malformed_feedback_is_400(make_client, body: dict) -> None:
    with make_client() as client:
        assert client.post(f"{URL}/feedback", json=body).status_code == 400


@pytest.mark.parametrize(
    "name", ["ex19-example-suggestion-accepted", "ex21-example-overridden-guidance-with-overridereason"]
)
def test_spec_feedback_for_cards_we_never_returned_is_404(make_client, name: str) -> None:
    with make_client() as client:
        body = load_json(CDSHOOKS / "spec-2.0.1" / "examples" / f"{name}.json")
        assert client.post(f"{URL}/feedback", json=body).status_code == 404


def test_feedback_to_an_unknown_service_is_404(make_client) -> None:
    with make_client() as client:
        answer = client.post("/cds-services/nope/feedback", json={"feedback": [accepted(card_from(client))]})
        assert answer.status_code == 404


def test_a_failed_decision_log_write_never_fails_the_answer_and_is_logged(
    make_client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with make_client(decision_flush_seconds=0.05, spool_drain_seconds=300) as client:
        store = runtime_of(client.app).store
        tried: list[int] = []

        def broken(rows: list[dict], *args: object) -> None:
            tried.append(len(rows))
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))

        monkeypatch.setattr(store, "write_decision_rows", broken)
        with caplog.at_level(logging.WARNING, logger="service"):
            answer = client.post(URL, json=hook_request("01-mscc-breast-cancer-leg-weakness"))
            assert answer.status_code == 200
            assert answer.json()["cards"][0]["indicator"] == "critical"
            for _ in range(200):  # the drainer's next batch, within the flush interval
                if any("storage refused" in r.getMessage() for r in caplog.records):
                    break
                time.sleep(0.01)
        assert tried == [1]
        [record] = [r for r in caplog.records if "storage refused" in r.getMessage()]
        assert record.fields["rows"] == 1
        assert "p01" not in caplog.text
        metrics = client.get("/metrics").text
        assert "mscc_decision_log_storage_refusals_total 1.0" in metrics
        assert "mscc_decision_log_spool_pending 1.0" in metrics  # kept on disk until storage returns
        assert "mscc_decision_log_failures_total 0.0" in metrics


def test_a_row_the_journal_refuses_is_held_until_storage_takes_it(make_client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal refuses a row: the answer does not wait on storage; drains keep trying while storage is flaky,
    and the row is written once it answers."""
    with make_client() as client:
        runtime = runtime_of(client.app)
        store = runtime.store
        real = store.sessions
        failures = iter([True, True, False])

        class Flaky:
            def begin(self):
                if next(failures, False):
                    raise OperationalError("BEGIN", {}, Exception("database is locked"))
                return real.begin()

        def disk_full(_row: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(runtime.spool, "put", disk_full)
        monkeypatch.setattr(store, "sessions", Flaky())
        row_client = client.post(URL, json=hook_request("01-mscc-breast-cancer-leg-weakness"))
        assert row_client.status_code == 200
        decisions = runtime.hooks.decisions
        for _ in range(3):
            decisions.flush()
        monkeypatch.setattr(store, "sessions", real)
        assert store.count()["decisions"] == 1
        assert runtime.spool.at_risk == 0


def test_storage_down_makes_readyz_503_and_feedback_503(make_client, monkeypatch: pytest.MonkeyPatch) -> None:
    with make_client() as client:
        card = card_from(client)
        store = runtime_of(client.app).store

        def down(*args: object, **kwargs: object) -> None:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))

        monkeypatch.setattr(store, "ping", lambda: False)
        monkeypatch.setattr(store, "record_feedback", down)
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "failing"
        answer = client.post(f"{URL}/feedback", json={"feedback": [accepted(card)]})
        assert answer.status_code == 503
        assert "send it again" in outcome_message(answer)


def test_metrics_count_calls_cards_and_feedback(make_client) -> None:
    with make_client() as client:
        card = card_from(client)
        client.post(URL, json={"bad": 1})
        client.post(f"{URL}/feedback", json={"feedback": [accepted(card)]})
        text = client.get("/metrics").text
    assert 'mscc_hook_calls_total{service="mscc-patient-view",status="200"} 1.0' in text
    assert f'mscc_cards_total{{indicator="critical",rule="{active_ref("mscc-suspected")}"}} 1.0' in text
    assert 'mscc_feedback_total{outcome="accepted"} 1.0' in text
    assert "mscc_hook_latency_seconds_bucket" in text


def test_drafts_run_in_shadow_are_logged_and_reported_but_never_shown(make_client, tmp_path: Path) -> None:
    """A draft with a 120-day window fires on numbness that began 100 days ago; the active 90-day version does not."""
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", rules)
    trial = new_version(
        rules, "mscc-suspected", "draft", lambda t: t.replace("unimaged_window: P90D", "unimaged_window: P120D")
    )
    old_numbness = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "ca",
                    "subject": {"reference": "Patient/s1"},
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C50.911"}]},
                    "recordedDate": "2024-01-01",
                }
            },
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "numb",
                    "subject": {"reference": "Patient/s1"},
                    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44077006"}]},
                    "onsetDateTime": "2026-08-12",
                }
            },
        ],
    }
    body = hook_request("09-no-cancer-low-back-pain-only")
    body["context"]["patientId"] = "s1"
    body["prefetch"] = {
        "conditions": old_numbness,
        "observations": None,
        "imaging_orders": None,
        "imaging_studies": None,
    }
    with make_client(shadow_drafts=True, rules_dir=rules) as client:
        answer = client.post(URL, json=body)
        assert answer.json()["cards"] == []  # the active version looks back 90 days for a sign never imaged
        both = client.post(URL, json=hook_request("01-mscc-breast-cancer-leg-weakness")).json()["cards"][0]
        report = {r["rule"]: r for r in client.get("/reports/rules").json()}
        store = runtime_of(client.app).store
        with store.sessions.begin() as session:
            agreed = store.decision_by_card(session, both["uuid"]).id
    draft = report[f"mscc-suspected@{trial}"]
    assert draft["shadow_fired"] == 2
    assert draft["shown"] == 0
    assert draft["shadow_evaluated"] == 2
    assert draft["shadow_agreements"] == 1  # both fire for example 01
    assert draft["shadow_disagreements"] == 1  # only the draft fires for numbness that began 100 days ago
    [disagreed] = draft["disagreement_ids"]
    assert disagreed != agreed


@pytest.mark.parametrize("raw_comment", ['"a\\u0000b"', '"\\ud800"'])
def test_feedback_no_database_can_store_is_400_never_send_it_again(make_client, raw_comment: str) -> None:
    """A NUL or a lone surrogate is valid JSON but no text a database stores: the schema says so, and it is a 400."""
    with make_client() as client:
        card = card_from(client)
        item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-20T09:05:00Z"}
        body = json.dumps({"feedback": [{**item, "overrideReason": {"userComment": "COMMENT"}}]})
        body = body.replace('"COMMENT"', raw_comment)  # raw JSON escapes: json.dumps would not write them
        answer = client.post(f"{URL}/feedback", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 400
        assert any("overrideReason.userComment" in d for d in outcome_details(answer))
        assert runtime_of(client.app).store.count()["feedback"] == 0


def test_an_over_long_code_is_400(make_client) -> None:
    with make_client() as client:
        card = card_from(client)
        item = {
            "card": card["uuid"],
            "outcome": "overridden",
            "outcomeTimestamp": "2026-11-20T09:05:00Z",
            "overrideReason": {"reason": {"system": "https://x.org", "code": "c" * 101}},
        }
        answer = client.post(f"{URL}/feedback", json={"feedback": [item]})
        assert answer.status_code == 400
        assert any("overrideReason.reason.code" in d for d in outcome_details(answer))


def test_values_the_database_refuses_are_400(make_client, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import DataError

    with make_client() as client:
        card = card_from(client)

        def refuse(*args: object) -> int:
            raise DataError("INSERT", {}, Exception("value too long for type character varying(40)"))

        monkeypatch.setattr(runtime_of(client.app).store, "record_feedback", refuse)
        assert client.post(f"{URL}/feedback", json={"feedback": [accepted(card)]}).status_code == 400


def test_feedback_that_arrives_before_its_decision_row_waits_for_it_and_is_stored(make_client) -> None:
    """The row is written after the answer (here 0.3 s later, as another worker under load might): not a 404."""
    import threading

    with make_client(feedback_wait_seconds=2.0) as client:
        store = runtime_of(client.app).store
        card = card_from(client)
        runtime_of(client.app).hooks.decisions.flush()
        with store.sessions.begin() as session:  # as if the row had not been written yet
            row = store.decision_by_card(session, card["uuid"])
            session.expunge(row)
            session.delete(session.merge(row))
        late = threading.Timer(
            0.3,
            lambda: store.write_decision(
                DecisionRecord(**{c.name: getattr(row, c.name) for c in row.__table__.columns})
            ),
        )
        late.start()
        answer = client.post(f"{URL}/feedback", json={"feedback": [accepted(card)]})
        late.join()
    assert answer.status_code == 200
    assert answer.json() == {"stored": 1}


def test_feedback_for_a_card_whose_decision_waits_in_the_spool_is_503_not_404(make_client, monkeypatch) -> None:
    with make_client() as client:
        runtime = runtime_of(client.app)

        def down(*args: object) -> None:
            raise OperationalError("INSERT", {}, Exception("database is down"))

        monkeypatch.setattr(runtime.store, "write_decision_rows", down)  # the row cannot leave the journal
        runtime.spool.put(decision_record("c-spooled"))
        item = {"card": "c-spooled", "outcome": "overridden", "outcomeTimestamp": "2026-11-20T09:05:00Z"}
        body = {"feedback": [item]}
        answer = client.post(f"{URL}/feedback", json=body)
    assert answer.status_code == 503
    assert "send it again" in outcome_message(answer)
