"""CDS Hooks 2.0 requirements that no other test states on its own, checked over every example response."""

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from authoring.examples import manifest
from tests.helpers import EXAMPLES, load_json

RESPONSES = [load_json(EXAMPLES / "responses" / f"{e['id']}.json") for e in manifest()["examples"]]
CARDS = [card for response in RESPONSES for card in response["cards"]]


def nulls_or_empties(value: Any, path: str = "") -> list[str]:
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}"
            if item is None or (item == [] and where != ".cards") or item == {}:
                found.append(where)
            found += nulls_or_empties(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += nulls_or_empties(item, f"{path}[{i}]")
    return found


def test_no_nulls_or_empty_arrays_in_any_response_or_discovery(client: TestClient) -> None:
    assert [p for r in RESPONSES for p in nulls_or_empties(r)] == []
    assert nulls_or_empties(client.get("/cds-services").json()) == []


def test_every_card_meets_the_card_rules() -> None:
    assert CARDS
    for card in CARDS:
        assert isinstance(card["uuid"], str)
        assert len(card["summary"]) < 140
        assert card["indicator"] in ("info", "warning", "critical")
        assert card["source"]["label"]
        assert card["source"]["url"].startswith("https://")
        assert card["source"]["topic"]["system"]
        assert card["source"]["topic"]["code"]
        assert "icon" not in card["source"]
        if card.get("suggestions"):
            assert card["selectionBehavior"] in ("at-most-one", "any")
        for suggestion in card.get("suggestions", []):
            assert isinstance(suggestion["label"], str)
            assert isinstance(suggestion["uuid"], str)
            assert isinstance(suggestion["isRecommended"], bool)
            for action in suggestion["actions"]:
                assert action["description"]
                if action["type"] == "delete":  # the draft the suggestion takes the place of, by reference
                    assert re.fullmatch(
                        r"(ServiceRequest|MedicationRequest)/[A-Za-z0-9\-.]{1,64}", action["resourceId"]
                    )
                    assert "resource" not in action  # the deprecated way to name it
                    continue
                assert action["type"] == "create"
                assert action["resource"]["resourceType"] == "ServiceRequest"
                assert "id" not in action["resource"]  # a new resource: the EHR assigns the id
            kinds = [a["type"] for a in suggestion["actions"]]
            assert kinds == sorted(kinds, key=lambda k: k != "delete")  # deletes first, as a transaction runs them
        for reason in card.get("overrideReasons", []):
            assert reason["system"]
            assert reason["code"]
            assert reason["display"]
        for link in card.get("links", []):
            assert link["label"]
            assert link["url"].startswith("https://")
            assert link["type"] == "absolute"
            assert "appContext" not in link


def test_extensions_are_objects_with_reverse_domain_names(client: TestClient) -> None:
    holders = [*RESPONSES, *CARDS, *client.get("/cds-services").json()["services"]]
    for holder in holders:
        extension = holder.get("extension")
        if extension is not None:
            assert isinstance(extension, dict)
            for key, value in extension.items():
                assert key.startswith("org.mscc-cds.")
                assert isinstance(value, dict)


def test_no_guidance_is_200_with_an_empty_card_array() -> None:
    assert any(response["cards"] == [] for response in RESPONSES)


def test_every_discovered_service_answers_at_base_cds_services_id(client: TestClient) -> None:
    services = client.get("/cds-services")
    assert services.status_code == 200
    assert isinstance(services.json()["services"], list)
    for service in services.json()["services"]:
        assert {"hook", "title", "description", "id", "prefetch"} <= set(service)
        answer = client.post(f"/cds-services/{service['id']}", json={"hookInstance": "x"})
        assert answer.status_code == 400  # the endpoint exists and checks its input


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_discovery_is_get_only(client: TestClient, method: str) -> None:
    assert getattr(client, method)("/cds-services").status_code == 405
