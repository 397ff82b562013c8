"""Logs carry no patient data: not the patient id, not names, not findings."""

import io
import json
import logging

import pytest
from fastapi.testclient import TestClient

from service.logs import JsonFormatter, hash_patient_id
from tests.helpers import hook_request


def test_a_hook_call_logs_only_hashed_patient_ids(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        client.post("/cds-services/mscc-patient-view", json=hook_request("01-mscc-breast-cancer-leg-weakness"))
        broken = hook_request("01-mscc-breast-cancer-leg-weakness")
        broken["prefetch"]["observations"]["entry"][0]["resource"]["effectiveDateTime"] = "Ann Example's birthday"
        client.post("/cds-services/mscc-patient-view", json=broken)
    text = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert "hook answered" in text
    for secret in ("p01", "Ann", "Example", "breast", "weakness", "birthday"):
        assert secret not in text, secret
    assert hash_patient_id("p01") in text


def test_json_formatter_writes_one_object_per_line() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom %s", ("now",), None)
    record.fields = {"decision_id": "d1"}
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "boom now"
    assert line["decision_id"] == "d1"
    assert line["level"] == "ERROR"


def test_set_aside_resources_are_counted_and_logged_by_category_without_ids(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = hook_request("10-entered-in-error-and-refuted")
    observations = body["prefetch"]["observations"]["entry"]
    other = json.loads(json.dumps(observations[0]))
    other["resource"]["id"] = "someone-elses"
    other["resource"]["subject"] = {"reference": "Patient/someone-else"}
    observations.append(other)
    with caplog.at_level(logging.INFO):
        assert client.post("/cds-services/mscc-patient-view", json=body).status_code == 200
    [line] = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.getMessage() == "hook answered"]
    assert line["set_aside"]["other-patient"] == 1
    assert line["set_aside"]["entered-in-error"] >= 1
    assert "refuted" in line["set_aside"]
    assert "someone" not in json.dumps(line)
    assert "p10" not in json.dumps(line)
    metrics = client.get("/metrics").text
    assert 'mscc_resources_set_aside_total{category="other-patient"} 1.0' in metrics
    assert 'mscc_resources_set_aside_total{category="refuted"}' in metrics


def test_an_unexpected_error_is_logged_with_where_it_was_raised_and_no_message() -> None:
    """Module, function and line of the innermost frame, and of our own innermost frame when a library raised;
    never the exception's message (it may quote patient data)."""

    def ours() -> None:
        int("patient-secret-value")

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.raised_at")
    logger.addHandler(handler)
    try:
        ours()
    except ValueError as error:
        logger.error("unhandled error", exc_info=error)
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["error"] == "ValueError"
    assert line["raised_at"].startswith("tests.test_logs:ours:")
    assert "patient-secret-value" not in stream.getvalue()
