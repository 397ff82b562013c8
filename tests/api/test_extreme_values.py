"""No 500 on valid input: every string and date field of every resource type a rule reads (Condition, Observation,
Patient, ServiceRequest, MedicationRequest, ImagingStudy, DiagnosticReport), at the ends of the date range with any
offset, and holding lone surrogates (valid JSON escapes, not valid UTF-8). Each call answers below 500, with a body
that is UTF-8 JSON."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import hook_request

EXAMPLES = [
    "01-mscc-breast-cancer-leg-weakness",  # a critical card: every display path runs
    "04-myeloma-thoracic-pain-score-8",  # an Observation with a value
    "05-breast-cancer-night-pain-symptom-observation",  # an Observation answered in words
    "14-order-sign-lumbar-xray-in-myeloma",  # a ServiceRequest draft order
    "16-whole-spine-mri-done-last-week",  # an ImagingStudy
    "17-order-sign-analgesia-for-back-pain",  # a MedicationRequest draft order
    "19-encounter-start-cauda-equina",  # encounter context
    "22-prostate-cancer-leg-weakness-observation-no-status",
]
DATES = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-14:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999+14:00",
    "0001-01-01",
    "9999-12-31",
    "0001",
    "9999-12",
]
LONE = ["x\ud800y", "\udfff", "\ud800\ud800"]
PATIENT = {"resourceType": "Patient", "id": "p01", "birthDate": "1950-02-03", "gender": "female"}
REPORT = {
    "resourceType": "DiagnosticReport",
    "id": "r1",
    "status": "final",
    "subject": {"reference": "Patient/p01"},
    "code": {"coding": [{"system": "http://loinc.org", "code": "30854-4", "display": "MR spine"}], "text": "MRI"},
    "effectiveDateTime": "2026-11-01T10:00:00Z",
    "issued": "2026-11-01T12:00:00Z",
    "conclusion": "No cord compression.",
}


def _requests() -> list[tuple[str, dict[str, Any]]]:
    found = [(name, hook_request(name)) for name in EXAMPLES]
    with_report = copy.deepcopy(found[0][1])
    with_report["prefetch"]["patient"] = PATIENT
    reports = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": REPORT}]}
    with_report["prefetch"]["imaging_reports"] = reports
    found.append(("01 with a Patient and a DiagnosticReport", with_report))
    return found


REQUESTS = _requests()


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    elif isinstance(value, str):
        yield path, value


def _fields(body: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """Every string in the request's FHIR resources (prefetch, and draft orders in the context)."""
    fhir = [("prefetch", body.get("prefetch") or {}), ("context", body["context"].get("draftOrders") or {})]
    return [
        (((root, "draftOrders") if root == "context" else (root,)) + path, text)
        for root, part in fhir
        for path, text in _leaves(part)
        if path[-1] not in ("resourceType",)
    ]


def _is_date(path: tuple[Any, ...], text: str) -> bool:
    return text[:4].isdigit() and (len(text) == 4 or text[4:5] == "-")


def _with(body: dict[str, Any], path: tuple[Any, ...], text: str) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    holder: Any = changed
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = text
    return changed


def _call(client: TestClient, body: dict[str, Any]) -> int:
    services = client.get("/cds-services").json()["services"]
    service = next(s["id"] for s in services if s["hook"] == body["hook"])
    answer = client.post(
        f"/cds-services/{service}",
        content=json.dumps(body),  # ensure_ascii: a lone surrogate travels as a \\ud800 escape, as an EHR sends it
        headers={"Content-Type": "application/json"},
    )
    json.loads(answer.content.decode("utf-8"))  # the answer itself is UTF-8 JSON
    return answer.status_code


def test_every_string_and_date_field_at_its_extremes_answers_below_500(make_app) -> None:
    failures = []
    calls = 0
    with TestClient(make_app(), raise_server_exceptions=False) as client:
        for name, body in REQUESTS:
            assert _call(client, body) == 200
            for path, text in _fields(body):
                for value in DATES if _is_date(path, text) else LONE:
                    calls += 1
                    status = _call(client, _with(body, path, value))
                    if status >= 500:
                        failures.append(f"{name}: {'.'.join(map(str, path))} = {value!r} -> {status}")
    assert calls > 500  # the sweep reached the fields
    assert not failures, "\n".join(failures)


def test_lone_surrogates_in_a_card_firing_condition_are_shown_as_replacement_characters(make_app) -> None:
    body = hook_request("01-mscc-breast-cancer-leg-weakness")
    for entry in body["prefetch"]["conditions"]["entry"]:
        for coding in entry["resource"]["code"]["coding"]:
            coding["display"] = "Weakness\ud800 of legs"
    with TestClient(make_app()) as client:
        answer = client.post(
            "/cds-services/mscc-patient-view", content=json.dumps(body), headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 200
    assert "Weakness\ufffd of legs" in answer.text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_text_in_any_field_answers_below_500(make_app, data: st.DataObject) -> None:
    name, body = data.draw(st.sampled_from(REQUESTS))
    fields = _fields(body)
    changed = body
    for _ in range(data.draw(st.integers(1, 3))):
        path, text = data.draw(st.sampled_from(fields))
        value = data.draw(
            st.sampled_from(DATES) if _is_date(path, text) else st.text(st.characters(codec=None), max_size=12)
        )
        changed = _with(changed, path, value)
    with TestClient(make_app(), raise_server_exceptions=False) as client:
        assert _call(client, changed) < 500, name
