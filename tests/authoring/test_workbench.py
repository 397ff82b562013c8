"""The rule authors' workbench, looked at in headless Chromium: the page loads, shows the example patients' cards
next to their traces, and the diff view lists the patients a draft changes."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from authoring.workbench import install_workbench
from authoring.workbench.charts import timeline
from service.config import PROJECT_ROOT
from tests.browser import dump_dom, require_chromium
from tests.helpers import active_ref, add_score_6_draft, hook_request, score_6_draft_ref
from tests.liveserver import serving

EXAMPLE = "example:01-mscc-breast-cancer-leg-weakness"


@pytest.fixture
def draft_rules(rules: Path) -> Path:
    return add_score_6_draft(rules)


def test_the_workbench_is_never_open_in_production_without_the_operator_token(make_app, tmp_path: Path) -> None:
    issuers = tmp_path / "issuers.yaml"
    issuers.write_text("issuers: []\n")
    production = {"dev_mode": False, "issuers_file": issuers, "public_base_url": "https://cds.example.org"}
    with TestClient(install_workbench(make_app(**production))) as client:
        assert client.get("/workbench").status_code == 404
    token = "t" * 32
    with TestClient(install_workbench(make_app(**production, operator_token=token))) as client:
        assert client.get("/workbench").status_code == 401
        assert client.get("/workbench", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_the_pages_show_rules_patients_cards_traces_and_the_diff_in_a_browser(make_app, draft_rules: Path) -> None:
    require_chromium()
    with serving(install_workbench(make_app(rules_dir=draft_rules))) as base:
        index = dump_dom(f"{base}/workbench")
        patient = dump_dom(f"{base}/workbench/patients/{quote(EXAMPLE, safe='')}")
        changed = dump_dom(f"{base}/workbench/diff?b={score_6_draft_ref()}")
    assert score_6_draft_ref() in index
    assert 'class="status-draft"' in index
    assert "01-mscc-breast-cancer-leg-weakness" in index
    assert '<section class="card" data-indicator="critical"' in patient  # the card as an EHR shows it
    assert f'data-version="{score_6_draft_ref()}"' in patient  # the draft beside the active versions
    assert "&#10003; holds" in patient or "✓ holds" in patient
    assert "Weakness of both legs" in patient
    assert "severe_pain_score alone ~ severe_pain_score value 6" in changed
    assert "gains a card" in changed


def test_the_report_draws_the_feedback(make_app) -> None:
    with TestClient(install_workbench(make_app(seed="wb"))) as client:
        card = client.post("/cds-services/mscc-patient-view", json=hook_request("01-mscc-breast-cancer-leg-weakness"))
        uuid = card.json()["cards"][0]["uuid"]
        reason = {"code": "mri-done-or-booked", "system": "https://mscc-cds.example.org/CodeSystem/override-reason"}
        item = {"card": uuid, "outcome": "overridden", "overrideReason": {"reason": reason},
                "outcomeTimestamp": "2026-11-20T09:05:00Z"}  # fmt: skip
        assert client.post("/cds-services/mscc-patient-view/feedback", json={"feedback": [item]}).status_code == 200
        page = client.get("/workbench/report").text
    assert "<title>shown: 1</title>" in page
    assert f"{active_ref('mscc-suspected')}: cards per day" in page  # each rule version over time
    assert "<title>overridden: 1</title>" in page
    assert "mri-done-or-booked" in page


def test_an_uploaded_bundle_is_evaluated_and_bad_input_is_a_clear_400(make_app) -> None:
    bundle = (PROJECT_ROOT / "fhir_examples/patients/04-myeloma-thoracic-pain-score-8.json").read_text()
    with TestClient(install_workbench(make_app())) as client:
        form = {"content-type": "application/x-www-form-urlencoded"}
        page = client.post("/workbench/patients", content="bundle=" + quote(bundle), headers=form)
        bad = client.post("/workbench/patients", content="bundle=nope", headers=form)
    assert page.status_code == 200
    assert 'data-indicator="warning"' in page.text
    assert bad.status_code == 400


def test_the_report_draws_one_day_of_data_as_points() -> None:
    drawn = timeline("cards per day", ["2026-11-20"], {"shown": [3], "accepted": [1]})
    assert drawn.count("<circle") == 2
    assert "<title>shown 2026-11-20: 3</title>" in drawn


def test_an_example_is_evaluated_at_its_own_time_and_the_author_may_set_another(make_app) -> None:
    key = quote("example:04-myeloma-thoracic-pain-score-8", safe="")
    with TestClient(install_workbench(make_app())) as client:
        own = client.get(f"/workbench/patients/{key}").text
        later = client.get(f"/workbench/patients/{key}", params={"now": "2027-06-01T09:00:00Z"}).text
        bad = client.get(f"/workbench/patients/{key}", params={"now": "next tuesday"})
    assert 'name="now" value="2026-11-20T09:00:00+00:00"' in own  # filled from the example
    assert 'data-indicator="warning"' in own
    assert 'name="now" value="2027-06-01T09:00:00+00:00"' in later
    assert 'data-indicator="warning"' not in later  # six months on, the pain and its score are old
    assert bad.status_code == 400
    assert "not a date and time with a time zone" in bad.json()["message"]


def test_a_pasted_bundle_is_evaluated_at_the_time_given_and_can_be_evaluated_again(make_app) -> None:
    bundle = (PROJECT_ROOT / "fhir_examples/patients/04-myeloma-thoracic-pain-score-8.json").read_text()
    form = {"content-type": "application/x-www-form-urlencoded"}
    with TestClient(install_workbench(make_app())) as client:
        at = client.post(
            "/workbench/patients", content=f"bundle={quote(bundle)}&now=2026-11-20T09:00:00Z", headers=form
        ).text
        late = client.post(
            "/workbench/patients", content=f"bundle={quote(bundle)}&now=2027-06-01T09:00:00Z", headers=form
        ).text
    assert 'data-indicator="warning"' in at
    assert 'data-indicator="warning"' not in late
    assert '<textarea name="bundle" hidden>' in at  # posted again with the next time, nothing stored
