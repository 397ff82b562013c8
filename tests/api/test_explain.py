"""POST /evaluate: cards plus a trace for a plain Bundle; invalid FHIR gets an OperationOutcome."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.cdshooks.cards import EXTENSION_KEY
from tests.helpers import active_file, active_version, copy_rules, patient_bundle, runtime_of

NOW = "2026-11-20T09:00:00Z"


def test_cards_and_a_trace_of_every_rule_and_criterion(client: TestClient) -> None:
    answer = client.post("/evaluate", params={"now": NOW}, json=patient_bundle("04-myeloma-thoracic-pain-score-8"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["patient"] == "p04"
    assert [c["indicator"] for c in body["cards"]] == ["warning"]
    trace = {t["rule"]: t for t in body["trace"]}
    assert trace["spinal-metastasis-pain"]["fired"] is True
    score = next(c for c in trace["spinal-metastasis-pain"]["criteria"] if c["name"] == "severe_pain_score")
    assert score["held"] is True
    assert score["evidence"][0] == {
        "reference": "Observation/p04-pain-score",
        "display": "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
        "date": "2026-11-18T10:00:00Z",
        "presence": "present",
        "status": "final",
        "value": 8.0,
    }


def test_trace_explains_what_was_not_counted(client: TestClient) -> None:
    body = client.post("/evaluate", params={"now": NOW}, json=patient_bundle("10-entered-in-error-and-refuted")).json()
    assert body["cards"] == []
    reasons = {s["reference"]: s["reason"] for s in body["setAside"]}
    assert reasons["Condition/p10-cancer-error"] == "verificationStatus is entered-in-error"
    assert reasons["Condition/p10-bone-mets-refuted"] == "verificationStatus is refuted"
    assert reasons["Observation/p10-weakness-error"] == "status is entered-in-error"


def test_a_named_rule_version_can_be_evaluated(client: TestClient) -> None:
    bundle = patient_bundle("01-mscc-breast-cancer-leg-weakness")
    body = client.post("/evaluate", params={"now": NOW, "rule": "spinal-metastasis-pain@2.0.0"}, json=bundle).json()
    assert [t["rule"] for t in body["trace"]] == ["spinal-metastasis-pain"]
    unknown = client.post("/evaluate", params={"rule": "nope@9.9.9"}, json=bundle)
    assert unknown.status_code == 400  # a mistake in the query, not invalid FHIR
    assert unknown.json()["error"] == "bad_request"
    assert "nope@9.9.9" in unknown.json()["message"]


def outcome(answer) -> list[dict[str, Any]]:
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/fhir+json"
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"]


def test_invalid_fhir_is_422_operation_outcome_naming_each_problem(client: TestClient) -> None:
    bundle = patient_bundle("04-myeloma-thoracic-pain-score-8")
    bundle["entry"][1]["resource"]["onsetDateTime"] = "soon"
    bundle["entry"][3]["resource"]["status"] = 7
    issues = outcome(client.post("/evaluate", json=bundle))
    expressions = [i["expression"][0] for i in issues]
    assert "Condition/p04-myeloma Condition.onsetDateTime" in expressions
    assert "Observation/p04-pain-score Observation.status" in expressions
    assert all(i["severity"] == "error" for i in issues)


def test_lenient_mode_reports_issues_and_goes_on(client: TestClient) -> None:
    bundle = patient_bundle("04-myeloma-thoracic-pain-score-8")
    bundle["entry"][3]["resource"]["status"] = 7
    body = client.post("/evaluate", params={"now": NOW, "strict": "false"}, json=bundle).json()
    assert body["issues"][0]["resource"] == "Observation/p04-pain-score"
    assert [c["indicator"] for c in body["cards"]] == ["warning"]  # thoracic pain still a red flag


def test_malformed_json_wrong_resource_and_bad_query_are_operation_outcomes(client: TestClient) -> None:
    outcome(client.post("/evaluate", content=b"{", headers={"content-type": "application/fhir+json"}))
    outcome(client.post("/evaluate", json={"resourceType": "Patient", "id": "x"}))
    outcome(
        client.post("/evaluate", params={"now": "yesterday"}, json=patient_bundle("09-no-cancer-low-back-pain-only"))
    )
    outcome(client.post("/evaluate", json={"resourceType": "Bundle", "type": "collection"}))


def test_rules_list_shows_versions_and_status(client: TestClient) -> None:
    body = client.get("/rules").json()
    rules = {r["id"]: r for r in body["rules"]}
    active = active_version("mscc-suspected")
    assert rules["mscc-suspected"]["active"] == active
    versions = {v["version"]: (v["status"], v["file"]) for v in rules["mscc-suspected"]["versions"]}
    assert versions[active] == ("active", f"rules/{active_file('mscc-suspected')}")
    assert versions["1.0.0"] == ("retired", "rules/mscc-suspected/1.0.0.yaml")
    assert [status for status, _ in versions.values()].count("active") == 1


@pytest.mark.parametrize("now", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"])
def test_an_extreme_evaluation_time_is_answered_not_a_500(client: TestClient, now: str) -> None:
    answer = client.post("/evaluate", params={"now": now}, json=patient_bundle("01-mscc-breast-cancer-leg-weakness"))
    assert answer.status_code == 200


def test_extreme_dates_and_numbers_in_the_data_are_read_not_a_500(client: TestClient) -> None:
    bundle = patient_bundle("04-myeloma-thoracic-pain-score-8")
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Condition":  # its onset dates it when it has one, else recordedDate
            resource["recordedDate"] = "9999-12-31"
            if "onsetDateTime" in resource:
                resource["onsetDateTime"] = "9999-12-31"
        if resource["resourceType"] == "Observation":
            resource["valueQuantity"] = {"value": 10**400}
    answer = client.post("/evaluate", params={"now": NOW, "strict": "false"}, json=bundle)
    assert answer.status_code == 200
    body = answer.json()
    assert body["cards"] == []  # nothing dated in the future counts, and no number that large is a score
    assert any(
        "after the evaluation time" in n["reason"]
        for r in body["trace"]
        for c in r["criteria"]
        for n in c["notCounted"]
    )


def test_operator_endpoints_need_the_token_when_one_is_set(make_app) -> None:
    token = "t" * 32
    with TestClient(make_app(operator_token=token)) as client:
        bundle = patient_bundle("09-no-cancer-low-back-pain-only")
        for method, path, body in (
            ("post", "/evaluate", bundle),
            ("get", "/reports/rules", None),
            ("get", "/metrics", None),
        ):
            assert client.request(method, path, json=body).status_code == 401, path
            wrong = {"Authorization": "Bearer " + "x" * 32}
            assert client.request(method, path, json=body, headers=wrong).status_code == 401, path
            good = {"Authorization": f"Bearer {token}"}
            assert client.request(method, path, json=body, headers=good).status_code == 200, path
        assert client.get("/cds-services").status_code == 200  # discovery and hooks use the EHR's JWT, not this


def test_a_short_operator_token_is_refused_at_start_up() -> None:
    from pydantic import ValidationError

    from service.config import Settings

    with pytest.raises(ValidationError):
        Settings(dev_mode=True, operator_token="short")


def test_evaluate_is_bounded(client: TestClient) -> None:
    bundle = patient_bundle("09-no-cancer-low-back-pain-only")
    entry = bundle["entry"][-1]
    bundle["entry"] = bundle["entry"] + [entry] * 2_000
    answer = client.post("/evaluate", params={"now": NOW}, json=bundle)
    assert answer.status_code == 422
    assert "at most 2000 entries" in json.dumps(answer.json())


def test_a_huge_display_is_not_echoed_back(client: TestClient) -> None:
    bundle = patient_bundle("04-myeloma-thoracic-pain-score-8")
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Condition":
            entry["resource"]["code"]["coding"][0]["display"] = "x" * 1_000_000
    answer = client.post("/evaluate", params={"now": NOW}, json=bundle)
    assert answer.status_code == 200
    assert len(answer.content) < 100_000


def test_a_reload_during_an_evaluation_leaves_one_rule_set_in_the_answer(make_app, tmp_path, monkeypatch) -> None:
    """The rules change on disk and are reloaded while a Bundle is being evaluated: the answer (its revision, its
    card, its trace) comes from the rule set the evaluation began with, and the next one from the new rule set."""
    from service.api import explain as route

    rules = copy_rules(tmp_path)
    app = make_app(rules_dir=rules)
    runtime = runtime_of(app)
    before = runtime.ruleset.revision
    original = route.evaluate_record

    def reload_midway(*args: Any, **kwargs: Any) -> Any:
        config = rules / "ruleset.yaml"
        config.write_text(config.read_text().replace("title:", "title: Changed -", 1))
        runtime.rules.reload()  # "unchanged" when the files watcher swapped it in first: either way, now swapped
        assert runtime.ruleset.revision != before
        return original(*args, **kwargs)

    monkeypatch.setattr(route, "evaluate_record", reload_midway)
    with TestClient(app) as client:
        body = client.post("/evaluate", json=patient_bundle("01-mscc-breast-cancer-leg-weakness")).json()
        after = runtime.ruleset.revision
        assert after != before
        assert body["rulesetRevision"] == before
        [card] = body["cards"]
        assert card["extension"][EXTENSION_KEY]["rulesetRevision"] == before
        monkeypatch.setattr(route, "evaluate_record", original)
        again = client.post("/evaluate", json=patient_bundle("01-mscc-breast-cancer-leg-weakness")).json()
        assert again["rulesetRevision"] == again["cards"][0]["extension"][EXTENSION_KEY]["rulesetRevision"] == after
