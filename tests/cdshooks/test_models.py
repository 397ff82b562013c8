"""Our protocol models against the spec's own examples and the hook library: tolerant in, strict out."""

from typing import Any

import pytest
from pydantic import ValidationError

from service.cdshooks.models import (
    CONTEXT_MODELS,
    Action,
    Card,
    CdsResponse,
    Coding,
    Discovery,
    FeedbackRequest,
    HookRequest,
    Source,
)
from tests.helpers import CDSHOOKS, load_json

SPEC = CDSHOOKS / "spec-2.0.1" / "examples"
LIBRARY = CDSHOOKS / "hook-library-1.0.1" / "examples"
INFERNO = CDSHOOKS / "fixtures-inferno"


@pytest.mark.parametrize(
    "path",
    [
        SPEC / "ex02-example.json",
        SPEC / "ex26-extensions.json",
        *sorted(p for p in INFERNO.glob("*_hook_request.json") if load_json(p)["hook"] in CONTEXT_MODELS),
    ],
    ids=lambda p: p.name,
)
def test_spec_and_inferno_requests_parse(path) -> None:
    request = HookRequest.model_validate(load_json(path))
    assert request.hookInstance


def test_hooks_we_do_not_serve_are_refused() -> None:
    body = load_json(INFERNO / "encounter_discharge_hook_request.json")
    body["hook"] = "problem-list-item-create"
    with pytest.raises(ValidationError, match="hook"):
        HookRequest.model_validate(body)


def test_request_extensions_and_unknown_fields_pass_through() -> None:
    request = HookRequest.model_validate(load_json(SPEC / "ex26-extensions.json"))
    assert request.extension["com.example.timestamp"] == "2017-11-27T22:13:25Z"  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hookInstance": "not-a-uuid"}, "hookInstance"),
        ({"fhirServer": None}, "fhirAuthorization was sent without fhirServer"),
        ({"context": "x"}, "context"),
        ({"hook": ""}, "hook"),
    ],
)
def test_requests_that_break_the_spec_are_refused(change: dict[str, Any], message: str) -> None:
    raw = {**load_json(SPEC / "ex02-example.json"), **change}
    with pytest.raises(ValidationError, match=message):
        HookRequest.model_validate(raw)


@pytest.mark.parametrize(
    "path",
    sorted(LIBRARY.glob("*-r4.json"))
    + sorted(LIBRARY.glob("patient-view-*.json"))
    + sorted(LIBRARY.glob("encounter-start-*.json")),
    ids=lambda p: p.name,
)
def test_hook_library_r4_contexts_parse(path) -> None:
    hook = path.name.split("-0")[0]
    raw = load_json(path)
    contexts = raw["context"] if isinstance(raw["context"], list) else [raw["context"]]
    for context in contexts:
        CONTEXT_MODELS[hook].model_validate(context)


@pytest.mark.parametrize(
    "path",
    [SPEC / "ex10-http-response.json", SPEC / "ex17-example.json"],
    ids=lambda p: p.name,
)
def test_spec_responses_validate_against_our_strict_models(path) -> None:
    CdsResponse.model_validate(load_json(path))


def test_the_spec_system_action_example_breaks_its_own_rule() -> None:
    """ex16's systemAction lacks the REQUIRED `description`: our strict output model notices."""
    with pytest.raises(ValidationError, match="description"):
        CdsResponse.model_validate(load_json(SPEC / "ex16-system-action.json"))


def test_the_spec_autolaunch_example_lacks_the_required_indicator() -> None:
    with pytest.raises(ValidationError, match="indicator"):
        CdsResponse.model_validate(load_json(SPEC / "ex18-example.json"))


def test_inferno_valid_cards_validate() -> None:
    for card in load_json(INFERNO / "valid_cards.json"):
        Card.model_validate(card)


@pytest.mark.parametrize("path", [SPEC / "ex12-action.json", SPEC / "ex13-action.json", SPEC / "ex14-action.json"])
def test_spec_actions_validate(path) -> None:
    Action.model_validate(load_json(path))


def test_spec_source_and_override_reasons() -> None:
    Source.model_validate(load_json(SPEC / "ex11-source.json")["source"])
    for reason in load_json(SPEC / "ex15-reasons-for-rejecting-a-card.json")["overrideReasons"]:
        Coding.model_validate(reason)


@pytest.mark.parametrize(
    "path",
    [SPEC / "ex01-discovery-example.json", SPEC / "ex27-extensions.json", INFERNO / "discovery-cds-services.json"],
    ids=lambda p: p.name,
)
def test_spec_discovery_documents_validate(path) -> None:
    Discovery.model_validate(load_json(path))


@pytest.mark.parametrize(
    "name",
    [
        "ex19-example-suggestion-accepted",
        "ex20-example-overridden-guidance-without-overridereason",
        "ex21-example-overridden-guidance-with-overridereason",
    ],
)
def test_spec_feedback_examples_parse(name: str) -> None:
    FeedbackRequest.model_validate(load_json(SPEC / f"{name}.json"))


def test_output_refuses_nulls_empty_arrays_and_long_summaries() -> None:
    base = {"summary": "s", "indicator": "info", "source": {"label": "x"}}
    with pytest.raises(ValidationError):
        Card.model_validate({**base, "links": []})
    with pytest.raises(ValidationError):
        Card.model_validate({**base, "summary": "x" * 140})
    with pytest.raises(ValidationError, match="selectionBehavior"):
        Card.model_validate({**base, "suggestions": [{"label": "do"}]})
    with pytest.raises(ValidationError, match="display"):
        Card.model_validate({**base, "overrideReasons": [{"system": "s", "code": "c"}]})
    with pytest.raises(ValidationError, match="system"):
        Card.model_validate({**base, "overrideReasons": [{"code": "c", "display": "d"}]})
    assert Card.model_validate(base).dump() == base
