"""Fetching missing prefetch from the EHR's FHIR server: a real HTTP server on 127.0.0.1, not mocks."""

import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.fhirserver import Behaviour, running_fhir_server
from tests.helpers import hook_request, outcome_details, outcome_message

URL = "/cds-services/mscc-patient-view"


@pytest.fixture
def app_for(make_app, tmp_path: Path):
    """`app_for(fhir_servers, timeout)`: an app whose one issuer may be fetched from at these FHIR servers."""

    def build(fhir_servers: list[str], timeout: float = 2.0) -> TestClient:
        issuers = tmp_path / "issuers.yaml"
        issuer = {"iss": "https://ehr.example.org", "fhir_servers": fhir_servers}
        issuers.write_text(yaml.safe_dump({"issuers": [issuer]}))
        return TestClient(make_app(seed="fetch", issuers_file=issuers, fetch_timeout_seconds=timeout))

    return build


def without_prefetch(name: str, server: str, token: str | None = None, keep: tuple[str, ...] = ()) -> dict:
    body = hook_request(name)
    body["prefetch"] = {k: v for k, v in body["prefetch"].items() if k in keep}
    body["fhirServer"] = server + "/fhir"
    if token:
        body["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "mscc-cds",
        }
    return body


def test_missing_prefetch_is_fetched_and_gives_the_same_card(app_for) -> None:
    with (
        running_fhir_server(Behaviour(token="s3cret")) as (base, behaviour),
        app_for([base + "/fhir"]) as client,
    ):
        answer = client.post(URL, json=without_prefetch("01-mscc-breast-cancer-leg-weakness", base, "s3cret"))
        assert answer.status_code == 200
        assert [c["indicator"] for c in answer.json()["cards"]] == ["critical"]
        assert sorted(s["path"].split("?")[0] for s in behaviour.seen) == [
            "/fhir/Condition",
            "/fhir/DiagnosticReport",
            "/fhir/ImagingStudy",
            "/fhir/Observation",  # every category but laboratory,
            "/fhir/Observation",  # the findings read by code whatever their category,
            "/fhir/Observation",  # and the laboratory results a rule reads
            "/fhir/Patient/p01",  # the birth date, for an onsetAge
            "/fhir/ServiceRequest",
        ]
        assert all(s["authorization"] == "Bearer s3cret" for s in behaviour.seen)


def test_only_the_missing_keys_are_fetched(app_for) -> None:
    with running_fhir_server() as (base, behaviour), app_for([base + "/fhir"]) as client:
        body = without_prefetch(
            "01-mscc-breast-cancer-leg-weakness",
            base,
            keep=("patient", "conditions", "imaging_orders", "imaging_studies", "imaging_reports"),
        )
        assert client.post(URL, json=body).status_code == 200
        # The searches run concurrently: they may reach the server in either order.
        assert sorted(s["path"].split("&")[1].split("=")[0] for s in behaviour.seen) == [
            "category",
            "category",
            "combo-code",
        ]
        assert all(s["path"].startswith("/fhir/Observation?patient=p01&") for s in behaviour.seen)


def test_paging_follows_next_links(app_for) -> None:
    with (
        running_fhir_server(Behaviour(page_size=1)) as (base, behaviour),
        app_for([base + "/fhir"]) as client,
    ):
        answer = client.post(URL, json=without_prefetch("01-mscc-breast-cancer-leg-weakness", base))
        assert [c["indicator"] for c in answer.json()["cards"]] == ["critical"]
        paths = sorted(s["path"].split("?")[0] + ("&_offset" in s["path"]) * " page 2" for s in behaviour.seen)
        assert paths == [  # two Conditions at one per page; the uncategorised weakness, found by its code
            "/fhir/Condition",
            "/fhir/Condition page 2",
            "/fhir/DiagnosticReport",
            "/fhir/ImagingStudy",
            "/fhir/Observation",
            "/fhir/Observation",
            "/fhir/Observation",
            "/fhir/Patient/p01",
            "/fhir/ServiceRequest",
        ]
        second = next(s["path"] for s in behaviour.seen if "_offset" in s["path"])
        assert second.startswith("/fhir/Condition?patient=p01&_count=1&_offset=1")


def test_a_server_not_on_the_allow_list_is_never_contacted(app_for) -> None:
    with running_fhir_server() as (base, behaviour), app_for(["https://fhir.other.example/r4"]) as client:
        answer = client.post(URL, json=without_prefetch("01-mscc-breast-cancer-leg-weakness", base))
        assert answer.status_code == 412
        assert "not on the allow-list" in outcome_message(answer)
        assert behaviour.seen == []


def test_a_wrong_token_is_412(app_for) -> None:
    with running_fhir_server(Behaviour(token="right")) as (base, _), app_for([base + "/fhir"]) as client:
        answer = client.post(URL, json=without_prefetch("01-mscc-breast-cancer-leg-weakness", base, "wrong"))
        assert answer.status_code == 412
        assert "HTTP 401" in outcome_message(answer)


def test_a_server_that_is_down_is_412(app_for) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = f"http://127.0.0.1:{port}"
    with app_for([down + "/fhir"]) as client:
        answer = client.post(URL, json=without_prefetch("01-mscc-breast-cancer-leg-weakness", down))
        assert answer.status_code == 412
        assert "could not be reached" in outcome_message(answer)


def test_a_slow_server_is_412_within_the_time_limit(app_for) -> None:
    with (
        running_fhir_server(Behaviour(delay=3)) as (base, _),
        app_for([base + "/fhir"], timeout=0.5) as client,
    ):
        started = time.perf_counter()
        answer = client.post(URL, json=without_prefetch("01-mscc-breast-cancer-leg-weakness", base))
        assert answer.status_code == 412
        assert time.perf_counter() - started < 2.0
        assert "did not answer within 0.5 s" in outcome_message(answer)


def test_a_failing_server_is_412_naming_the_key_and_its_search(app_for, caplog) -> None:
    """The 412 names the prefetch key whose search failed and that search as discovery offers it (its template:
    the rendered query holds the patient's id, and the message is logged too)."""
    kept = ("patient", "imaging_orders", "imaging_studies", "imaging_reports", "observations")
    body = without_prefetch("01-mscc-breast-cancer-leg-weakness", "", keep=kept)
    with running_fhir_server(Behaviour(status=500)) as (base, _), app_for([base + "/fhir"]) as client:
        body["fhirServer"] = base + "/fhir"
        answer = client.post(URL, json=body)
        template = client.get("/cds-services").json()["services"][0]["prefetch"]["conditions"]
    assert answer.status_code == 412
    assert outcome_message(answer) == (
        "prefetch keys ['conditions'] could not be fetched from fhirServer: the FHIR server answered HTTP 500"
    )
    assert outcome_details(answer) == [f"conditions: {template}"]
    assert "{{context.patientId}}" in template
    patient_id = body["context"]["patientId"]
    assert patient_id not in answer.text
    assert patient_id not in caplog.text


@pytest.mark.parametrize("evil", ["http://169.254.169.254", "http://127.0.0.1:1"])
def test_a_next_link_to_another_server_is_not_followed(app_for, evil: str) -> None:
    with (
        running_fhir_server(Behaviour(page_size=1, evil_next=evil)) as (base, _),
        app_for([base + "/fhir"]) as client,
    ):
        answer = client.post(URL, json=without_prefetch("01-mscc-breast-cancer-leg-weakness", base))
        assert answer.status_code == 412
        assert "leaves the allowed server" in outcome_message(answer)


def test_fetch_failures_are_counted_in_metrics(app_for) -> None:
    with running_fhir_server(Behaviour(status=500)) as (base, _), app_for([base + "/fhir"]) as client:
        client.post(URL, json=without_prefetch("01-mscc-breast-cancer-leg-weakness", base))
        assert 'mscc_fhir_fetch_failures_total{reason="bad_answer"} 1.0' in client.get("/metrics").text


def test_an_optional_key_whose_search_fails_costs_the_call_nothing_else(app_for) -> None:
    """The laboratory search fails; the other keys' results are used, and the failed key is named unavailable."""
    behaviour = Behaviour(status=500, failing="category=laboratory")
    with running_fhir_server(behaviour) as (base, _), app_for([base + "/fhir"]) as client:
        answer = client.post(URL, json=without_prefetch("01-mscc-breast-cancer-leg-weakness", base))
    assert answer.status_code == 200
    assert answer.json()["cards"][0]["indicator"] == "critical"
    assert answer.json()["extension"]["org.mscc-cds.evaluation"]["unavailable"] == ["observations_laboratory"]


def test_optional_keys_that_cannot_be_had_do_not_block_the_answer(app_for) -> None:
    with app_for([]) as client:
        body = hook_request("01-mscc-breast-cancer-leg-weakness")
        body["prefetch"] = {k: v for k, v in body["prefetch"].items() if k in ("conditions", "observations")}
        answer = client.post(URL, json=body)
        assert answer.status_code == 200
        assert answer.json()["extension"]["org.mscc-cds.evaluation"]["unavailable"] == [
            "patient",
            "observations_coded",
            "observations_laboratory",
            "imaging_orders",
            "imaging_studies",
            "imaging_reports",
        ]
        assert any("MRI" in s["label"] for s in answer.json()["cards"][0]["suggestions"])  # the safe side


@pytest.mark.parametrize(
    ("example", "service"),
    [
        ("01-mscc-breast-cancer-leg-weakness", "mscc-patient-view"),
        ("19-encounter-start-cauda-equina", "mscc-encounter-start"),
        ("15-order-select-whole-spine-mri-selected", "mscc-order-select"),
        ("14-order-sign-lumbar-xray-in-myeloma", "mscc-order-sign"),
    ],
)
def test_every_hook_gives_the_same_card_with_or_without_prefetch(app_for, example: str, service: str) -> None:
    with running_fhir_server() as (base, behaviour), app_for([base + "/fhir"]) as client:
        prefetched = client.post(f"/cds-services/{service}", json=hook_request(example)).json()["cards"]
        assert behaviour.seen == []
        fetched = client.post(f"/cds-services/{service}", json=without_prefetch(example, base)).json()["cards"]
        assert len(behaviour.seen) == 8  # one search or read per prefetch key

    def essence(cards: list[dict]) -> list[tuple]:
        return [(c["indicator"], c["summary"], tuple(s["label"] for s in c.get("suggestions", []))) for c in cards]

    assert essence(fetched) == essence(prefetched)
    assert fetched


@pytest.mark.parametrize(
    ("url", "climbs"),
    [
        ("http://h/fhir/Condition?page=2", False),
        ("http://h/fhir/../admin", True),
        ("http://h/fhir/%2e%2e/admin", True),
        ("http://h/fhir/%252E%252E/admin", True),
        ("http://h/fhir/..%5cadmin", True),
        ("http://h/fhir/./Condition", True),
    ],
)
def test_dot_segments_are_found_however_they_are_encoded(url: str, climbs: bool) -> None:
    from service.cdshooks.fetch import _has_dot_segments

    assert _has_dot_segments(url) is climbs


def test_a_percent_encoded_climb_in_a_next_link_is_not_followed(app_for) -> None:
    with (
        running_fhir_server(Behaviour(page_size=1)) as (base, behaviour),
        app_for([base + "/fhir"]) as client,
    ):
        behaviour.evil_next = f"{base}/fhir/%2e%2e"  # next: {base}/fhir/%2e%2e/fhir/Condition?...: inside by prefix
        answer = client.post(URL, json=without_prefetch("01-mscc-breast-cancer-leg-weakness", base))
        assert answer.status_code == 412
        assert "leaves the allowed server" in outcome_message(answer)


@pytest.mark.parametrize("filters", ["ignore", "refuse"])
def test_a_server_that_ignores_or_refuses_the_filters_gives_the_same_card(app_for, filters: str) -> None:
    """Ignored: everything comes, read once. Refused (HTTP 400): the base queries are fetched instead."""
    with running_fhir_server(Behaviour(filters=filters)) as (base, behaviour), app_for([base + "/fhir"]) as client:
        name = "01-mscc-breast-cancer-leg-weakness"
        prefetched = client.post(URL, json=hook_request(name)).json()
        fetched = client.post(URL, json=without_prefetch(name, base)).json()
        assert [c["indicator"] for c in fetched["cards"]] == ["critical"]
        assert fetched["cards"][0]["detail"] == prefetched["cards"][0]["detail"]  # each finding listed once
        if filters == "refuse":
            wide = [s["path"] for s in behaviour.seen if "&" not in s["path"]]
            assert "/fhir/Observation?patient=p01" in wide
            assert len([p for p in wide if p.startswith("/fhir/Observation")]) == 1  # one base, fetched once


def test_a_prefetch_the_ehr_could_not_run_is_fetched_with_the_base_query(app_for) -> None:
    with running_fhir_server(Behaviour(filters="refuse")) as (base, behaviour), app_for([base + "/fhir"]) as client:
        body = hook_request("01-mscc-breast-cancer-leg-weakness")
        body["prefetch"]["observations"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
        body["fhirServer"] = base + "/fhir"
        answer = client.post(URL, json=body)
        assert [c["indicator"] for c in answer.json()["cards"]] == ["critical"]
        assert "/fhir/Observation?patient=p01" in [s["path"] for s in behaviour.seen]


@pytest.mark.parametrize(
    "overrides",
    [
        {"entry": 5},
        {"entry": "abc"},
        {"entry": {"resource": {}}},
        {"link": 3},
        {"link": ["next"]},
        {"link": [{"relation": "next", "url": 7}]},
        {"link": {"relation": "next"}},
    ],
    ids=repr,
)
def test_a_search_answer_of_odd_shape_is_a_412_never_a_500_nor_no_data(app_for, overrides: dict) -> None:
    """The FHIR server is outside input too (seen as 500s): entries or links that cannot be read mean the data is
    not had, never "no data" and never the first page alone."""
    with (
        running_fhir_server(Behaviour(bundle_overrides=overrides)) as (base, _),
        app_for([base + "/fhir"]) as client,
    ):
        answer = client.post(URL, json=without_prefetch("01-mscc-breast-cancer-leg-weakness", base))
        assert answer.status_code == 412, answer.text
        assert "the FHIR server's" in outcome_message(answer)


def call_with_token(app_for, **authorization: str) -> tuple[Any, list[dict[str, str]]]:
    """Example 01 without prefetch, its FHIR server reached with a token whose fields are changed as given:
    (the answer, what the FHIR server saw)."""
    body = without_prefetch("01-mscc-breast-cancer-leg-weakness", "", token="s3cret")
    with running_fhir_server(Behaviour(token="s3cret")) as (base, behaviour), app_for([base + "/fhir"]) as client:
        body["fhirServer"] = base + "/fhir"
        body["fhirAuthorization"].update(authorization)
        return client.post(URL, json=body), behaviour.seen


def test_a_token_for_another_patient_is_never_used(app_for) -> None:
    """`fhirAuthorization.patient` names the patient the token is for: another one's token fetches nothing."""
    answer, seen = call_with_token(app_for, patient="someone-else")
    assert seen == []
    assert answer.status_code == 412
    assert "fhirAuthorization is for another patient than context.patientId" in outcome_message(answer)


def test_the_token_for_the_calls_patient_is_used(app_for) -> None:
    patient_id = hook_request("01-mscc-breast-cancer-leg-weakness")["context"]["patientId"]
    assert call_with_token(app_for, patient=patient_id)[0].status_code == 200


@pytest.mark.parametrize("scope", ["patient/*.rs", "patient/Patient.r patient/*.s", "user/*.read"])
def test_smart_v1_and_v2_scopes_are_understood(app_for, scope: str) -> None:
    answer, _ = call_with_token(app_for, scope=scope)
    assert answer.status_code == 200
    assert answer.json()["cards"][0]["indicator"] == "critical"


def test_a_scope_that_does_not_cover_a_required_key_is_412_before_any_fetch(app_for) -> None:
    answer, seen = call_with_token(app_for, scope="patient/Observation.rs patient/Patient.r")
    assert seen == []
    assert answer.status_code == 412
    assert "fhirAuthorization.scope does not allow fetching them" in outcome_message(answer)
    [detail] = outcome_details(answer)
    assert detail.startswith("conditions: Condition?patient={{context.patientId}}")
    assert detail.endswith("needs search of Condition (patient/Condition.s or .read)")


def test_the_access_token_is_transient_never_logged_or_stored(app_for, caplog) -> None:
    """CDS Hooks: the access token SHALL be treated as transient by the CDS Service. It is used for the fetch and
    then forgotten: not in the log, not in the decision row."""
    from sqlalchemy import select

    from service.store.tables import DecisionRow
    from tests.helpers import caught_up_store

    token = "tok-7f3a9c-transient"
    with (
        running_fhir_server(Behaviour(token=token)) as (base, behaviour),
        app_for([base + "/fhir"]) as client,
    ):
        caplog.set_level("DEBUG")
        answer = client.post(URL, json=without_prefetch("01-mscc-breast-cancer-leg-weakness", base, token))
        assert answer.status_code == 200
        assert behaviour.seen  # the token was used for the fetch
        with caught_up_store(client.app).sessions() as session:
            rows = [repr(vars(row)) for row in session.scalars(select(DecisionRow))]
    assert rows
    assert all(token not in row for row in rows)
    assert token not in caplog.text
