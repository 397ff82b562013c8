"""The deadline hooks over HTTP: appointment-book, encounter-discharge and order-dispatch keep the rule's MRI
deadline, name what they could not read, and answer as the other hooks do (decision rows, feedback)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.cdshooks.deadline import clock_of
from service.cdshooks.deadlinecard import deadline_name, span
from service.engine.evaluation import evaluate_record
from service.engine.ruleset import RuleSet
from service.fhir.bundle import read_patient_bundle
from service.fhir.record import build_record
from tests.helpers import CDSHOOKS, EXAMPLES, caught_up_store, hook_request, load_json, outcome_message


def call(client: TestClient, example: str, change: Any = None) -> dict[str, Any]:
    body = copy.deepcopy(hook_request(example))
    if change is not None:
        change(body)
    answer = client.post(f"/cds-services/mscc-{body['hook']}", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def issues(answer: dict[str, Any]) -> list[dict[str, str]]:
    return list(answer["extension"]["org.mscc-cds.evaluation"].get("inputIssues", []))


def test_an_mri_booked_five_days_out_names_the_deadline_the_slot_and_the_delay(client: TestClient) -> None:
    [card] = call(client, "24-appointment-book-mri-five-days-late")["cards"]
    assert card["indicator"] == "critical"
    assert card["summary"] == "Whole-spine MRI booked for 25 Nov 2026 10:00: 4 days 3 hours past its 24-hour deadline"
    assert "due within **24 hours** of 20 Nov 2026 07:00" in card["detail"]
    assert "that is by **21 Nov 2026 07:00**" in card["detail"]
    assert "**4 days 3 hours late**" in card["detail"]
    # what helps: the stat MRI (offered again although an order exists) and the MSCC coordinator
    assert [s["label"] for s in card["suggestions"]] == [
        "Order MRI whole spine (stat, within 24 hours)",
        "Refer to MSCC coordinator / spinal MDT (stat)",
    ]
    assert card["extension"]["org.mscc-cds.decision"]["rules"][0].startswith("mscc-suspected@")


def test_the_same_mri_booked_within_the_deadline_gets_no_card(client: TestClient) -> None:
    assert call(client, "25-appointment-book-mri-in-time")["cards"] == []


def test_a_plain_array_of_appointments_is_read_and_named(client: TestClient) -> None:
    def as_array(body: dict[str, Any]) -> None:
        body["context"]["appointments"] = [e["resource"] for e in body["context"]["appointments"]["entry"]]

    answer = call(client, "24-appointment-book-mri-five-days-late", as_array)
    assert len(answer["cards"]) == 1
    [named] = [i for i in issues(answer) if i["resource"] == "context.appointments"]
    assert "plain array" in named["message"]
    assert named["outcome"] == "counted"


def test_an_mri_appointment_with_no_start_is_named_and_not_in_time(client: TestClient) -> None:
    def no_start(body: dict[str, Any]) -> None:
        for entry in body["context"]["appointments"]["entry"]:
            entry["resource"].pop("start")
            entry["resource"].pop("end")

    answer = call(client, "25-appointment-book-mri-in-time", no_start)
    [card] = answer["cards"]
    assert card["summary"] == "Whole-spine MRI booked with no time given: it may miss its 24-hour deadline"
    assert {"resource": "Appointment/p25-mri-slot", "location": "start"}.items() <= issues(answer)[0].items()


def test_appointments_that_are_not_a_bundle_are_a_400(client: TestClient) -> None:
    body = hook_request("24-appointment-book-mri-five-days-late")
    body["context"]["appointments"] = {"resourceType": "Appointment", "id": "x"}
    answer = client.post("/cds-services/mscc-appointment-book", json=body)
    assert answer.status_code == 400
    assert "context is not valid for the appointment-book hook" in outcome_message(answer)


def test_discharge_with_no_mri_done_or_booked_and_the_answer_is_stored_with_feedback(client: TestClient) -> None:
    [card] = call(client, "26-encounter-discharge-retention-no-mri")["cards"]
    assert card["summary"].startswith("Discharge with no whole-spine MRI done or booked: it was due by 20 Nov 2026")
    assert "**Book it before the patient leaves**" in card["detail"]
    feedback = {
        "card": card["uuid"],
        "outcome": "accepted",
        "outcomeTimestamp": "2026-11-20T09:05:00Z",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
    }
    stored = client.post("/cds-services/mscc-encounter-discharge/feedback", json={"feedback": [feedback]})
    assert stored.json() == {"stored": 1}
    store = caught_up_store(client.app)
    with store.sessions.begin() as session:
        row = store.decision_by_card(session, card["uuid"])
        assert row is not None
        assert row.service_id == "mscc-encounter-discharge"


def test_discharge_with_the_mri_booked_in_time_is_silent(client: TestClient) -> None:
    assert call(client, "27-encounter-discharge-mri-booked-in-time")["cards"] == []


def test_discharge_without_the_appointments_key_still_warns_and_says_what_was_missing(client: TestClient) -> None:
    def no_appointments(body: dict[str, Any]) -> None:
        del body["prefetch"]["appointments"]

    answer = call(client, "27-encounter-discharge-mri-booked-in-time", no_appointments)
    assert len(answer["cards"]) == 1  # the booking cannot be seen: the safe side
    assert "appointments" in answer["extension"]["org.mscc-cds.evaluation"]["unavailable"]


def test_a_dispatch_whose_task_allows_four_days_gets_the_card(client: TestClient) -> None:
    [card] = call(client, "28-order-dispatch-task-allows-four-days")["cards"]
    assert card["summary"].startswith("Whole-spine MRI dispatched with a Task allowing until 24 Nov 2026 09:00")
    assert "fulfilment Task allowing until **24 Nov 2026 09:00**" in card["detail"]


def test_a_dispatch_within_the_deadline_is_silent_and_one_with_no_task_is_named(client: TestClient) -> None:
    assert call(client, "29-order-dispatch-task-within-24-hours")["cards"] == []

    def no_tasks(body: dict[str, Any]) -> None:
        del body["context"]["fulfillmentTasks"]

    answer = call(client, "29-order-dispatch-task-within-24-hours", no_tasks)
    assert len(answer["cards"]) == 1
    [named] = issues(answer)
    assert named["resource"] == "ServiceRequest/p29-mri-order"
    assert "no fulfilment Task gives a time" in named["message"]


def test_order_dispatch_needs_its_orders_and_performer(client: TestClient) -> None:
    body = hook_request("28-order-dispatch-task-allows-four-days")
    del body["context"]["dispatchedOrders"]
    assert client.post("/cds-services/mscc-order-dispatch", json=body).status_code == 400


@pytest.mark.parametrize(
    ("fixture", "service"),
    [
        ("appointment_book_hook_request.json", "mscc-appointment-book"),
        ("encounter_discharge_hook_request.json", "mscc-encounter-discharge"),
    ],
)
def test_the_inferno_fixtures_are_accepted(client: TestClient, fixture: str, service: str) -> None:
    """As the test kit sends them (its appointment is not valid R4): a FHIR server not on the allow-list is never
    called (412); with the prefetch given, the call is answered."""
    body = load_json(CDSHOOKS / "fixtures-inferno" / fixture)
    answer = client.post(f"/cds-services/{service}", json=body)
    assert answer.status_code == 412
    body["prefetch"] = {"conditions": None, "observations": None}
    answer = client.post(f"/cds-services/{service}", json=body)
    assert answer.status_code == 200
    assert answer.json()["cards"] == []


def test_the_clock_starts_when_the_suspicion_first_held(ruleset: RuleSet) -> None:
    """spinal-metastasis-pain: all of cancer (2023), spinal pain (onset 14 Nov, recorded 16 Nov) and a red flag
    (the same thoracic pain, or the pain score of 18 Nov: the first counts): the clock starts on 16 Nov."""
    bundle = read_patient_bundle(load_json(EXAMPLES / "patients" / "04-myeloma-thoracic-pain-score-8.json"))
    record = build_record(bundle.patient_id, bundle.resources, text=ruleset.text_path)
    now = datetime(2026, 11, 20, 9, tzinfo=UTC)
    evaluation = evaluate_record(ruleset, record, now)
    [decision] = [d for d in evaluation.fired if d.rule.id == "spinal-metastasis-pain"]
    clock = clock_of(decision, now)
    assert clock is not None
    assert clock.started == datetime(2026, 11, 16, tzinfo=UTC)
    assert clock.due == datetime(2026, 11, 23, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "spoken", "adjective"),
    [
        (timedelta(hours=24), "24 hours", "24-hour"),
        (timedelta(days=7), "7 days", "7-day"),
        (timedelta(days=3, hours=3), "3 days 3 hours", "75-hour"),
        (timedelta(minutes=50), "50 minutes", "50-minute"),
    ],
)
def test_durations_read_as_a_clinician_says_them(delta: timedelta, spoken: str, adjective: str) -> None:
    assert span(delta) == spoken
    assert deadline_name(delta) == adjective


@pytest.mark.parametrize(
    "example",
    [
        "24-appointment-book-mri-five-days-late",
        "26-encounter-discharge-retention-no-mri",
        "28-order-dispatch-task-allows-four-days",
    ],
)
def test_each_deadline_hook_checks_the_jwt_as_the_others_do(make_app, tmp_path, example: str) -> None:
    """Production mode: the token for this service is accepted (order-dispatch names no user), another service's
    token is a bare 401."""
    from service.runtime import system_clock
    from tests.jwtkit import BASE_URL, Signer, issuers_file

    signer = Signer()
    body = hook_request(example)
    body.pop("extension")  # production mode evaluates now: the card may differ, the authentication may not
    service = f"mscc-{body['hook']}"
    app = make_app(
        clock=system_clock,
        dev_mode=False,
        issuers_file=issuers_file(tmp_path / "issuers.yaml", signer),
        public_base_url=BASE_URL,
    )
    with TestClient(app) as secure:
        good = {"Authorization": f"Bearer {signer.token(service)}"}
        assert secure.post(f"/cds-services/{service}", json=body, headers=good).status_code == 200
        other = {"Authorization": f"Bearer {signer.token('mscc-patient-view')}"}
        assert secure.post(f"/cds-services/{service}", json=body, headers=other).status_code == 401
