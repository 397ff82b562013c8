"""Timeless examples: each example moved to another day gives the answer it gives on its own day, so a tester can
drive a service in production mode (which evaluates at its own clock) with the examples."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from authoring.__main__ import main
from authoring.examples import manifest
from authoring.timeshift import request_at, shift_value
from tests.helpers import EXAMPLES as EXAMPLES_DIR
from tests.helpers import NOW, hook_request, load_json

LATER = NOW + timedelta(days=200, hours=5)
EXAMPLES = [example["id"] for example in manifest()["examples"]]


def test_dates_move_by_whole_days_and_keep_their_form() -> None:
    assert shift_value("2026-11-18", 3) == "2026-11-21"
    assert shift_value("2026-11-18T10:00:00Z", 3) == "2026-11-21T10:00:00Z"
    assert shift_value("2026-12-31T23:30:00.5+01:00", 1) == "2027-01-01T23:30:00.5+01:00"
    assert shift_value("2026", 3) == "2026"  # a year alone stays
    assert shift_value("Patient/2026-11-18", 3) == "Patient/2026-11-18"


def _answer(cards: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            card["indicator"],
            tuple(card["extension"]["org.mscc-cds.decision"].get("rules", ())),
            tuple(s["label"] for s in card.get("suggestions") or []),
        )
        for card in cards
    ]


@pytest.mark.parametrize("example", EXAMPLES)
def test_an_example_moved_200_days_on_gives_its_expected_answer_at_the_services_own_clock(
    make_app, example: str
) -> None:
    moved = request_at(hook_request(example), LATER)
    assert "extension" not in moved or "org.mscc-cds.evaluation-time" not in moved["extension"]
    expected = load_json(EXAMPLES_DIR / "responses" / f"{example}.json")
    service = next(e.get("service", "mscc-patient-view") for e in manifest()["examples"] if e["id"] == example)
    with TestClient(make_app(clock=lambda: LATER)) as client:
        answer = client.post(f"/cds-services/{service}", json=moved)
    assert answer.status_code == 200
    assert _answer(answer.json()["cards"]) == _answer(expected["cards"])


def test_the_cli_prints_a_moved_request_and_refuses_a_bad_time(capsys) -> None:
    assert main(["examples", "request", EXAMPLES[0], "--at", "2027-06-08T09:00:00Z"]) == 0
    assert '"org.mscc-cds.evaluation-time"' not in capsys.readouterr().out
    assert main(["examples", "request", EXAMPLES[0], "--at", "tomorrow"]) == 2
    assert main(["examples", "request", "no-such-example"]) == 1
