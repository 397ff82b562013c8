"""Every example in fhir_examples/: its request is built from its patient, and the service answers exactly the
stored response, which must also meet the hand-written expectation in examples.yaml."""

import json

import pytest
from fastapi.testclient import TestClient

from authoring.examples import DEFAULT_SERVICE, build_request, manifest
from tests.helpers import EXAMPLES, hook_request, load_json, patient_bundle

MANIFEST = manifest()
IDS = [e["id"] for e in MANIFEST["examples"]]
REBUILD = "run `python -m authoring examples build` after changing patients/ or rules/"


def test_manifest_lists_every_patient_and_at_least_ten() -> None:
    assert sorted(IDS) == sorted(p.stem for p in (EXAMPLES / "patients").glob("*.json"))
    assert len(IDS) >= 10
    assert any("cards" in e["expect"] for e in MANIFEST["examples"])


@pytest.mark.parametrize("example", MANIFEST["examples"], ids=IDS)
def test_example_gives_its_expected_response(make_app, ruleset, example: dict) -> None:
    example_id = example["id"]
    request = hook_request(example_id)
    service = ruleset.service(example.get("service", DEFAULT_SERVICE))
    assert request == build_request(example, patient_bundle(example_id), MANIFEST["now"], service), REBUILD
    with TestClient(make_app(seed=example_id)) as client:
        answer = client.post(f"/cds-services/{service.id}", json=request)
    assert answer.status_code == 200
    body = answer.json()
    assert body == load_json(EXAMPLES / "responses" / f"{example_id}.json"), REBUILD
    expect = example["expect"]
    if "cards" in expect:
        assert len(body["cards"]) == expect["cards"]
    else:
        [card] = body["cards"]
        assert card["indicator"] == expect["indicator"]
        assert card["extension"]["org.mscc-cds.decision"].get("rules", []) == expect["rules"]
        if not expect["rules"]:  # the check could not complete: a notice naming what could not be read, no orders
            assert card["extension"]["org.mscc-cds.decision"]["unreadable"]
            assert "suggestions" not in card
            return
        mri = [s for s in card.get("suggestions", []) if "MRI" in s["label"]]
        assert len(mri) == (1 if expect.get("mri_offered", True) else 0)
        assert any(
            "referral" in s["actions"][0]["description"] or "review" in s["actions"][0]["description"]
            for s in card["suggestions"]
        )


@pytest.mark.parametrize("example", [e for e in MANIFEST["examples"] if "service" not in e], ids=lambda e: e["id"])
def test_evaluate_endpoint_agrees_with_the_hook(client: TestClient, example: dict) -> None:
    params = {"now": MANIFEST["now"], "strict": "false"}  # lenient, as the hook is
    answer = client.post("/evaluate", params=params, json=patient_bundle(example["id"]))
    hook = load_json(EXAMPLES / "responses" / f"{example['id']}.json")
    summaries = [c["summary"] for c in answer.json()["cards"]]
    assert summaries == [c["summary"] for c in hook["cards"]]


def test_readme_has_a_curl_line_per_example() -> None:
    from authoring.examples import readme_text

    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    assert readme == readme_text(MANIFEST), REBUILD
    for example_id in IDS:
        assert f"requests/{example_id}.json" in readme, example_id
    assert json.loads((EXAMPLES / "patients" / f"{IDS[0]}.json").read_text())["resourceType"] == "Bundle"
