import pytest

from service.cdshooks.prefetch import read_prefetch, render_query
from service.errors import BadRequest

TEMPLATES = {
    "conditions": "Condition?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}",
}
CONDITION = {"resourceType": "Condition", "id": "c"}


def test_absent_keys_are_missing_and_null_means_no_data() -> None:
    result = read_prefetch(TEMPLATES, {"conditions": None})
    assert result.missing == ["observations"]
    assert result.resources == []


def test_operation_outcome_means_the_query_failed() -> None:
    result = read_prefetch(TEMPLATES, {"conditions": {"resourceType": "OperationOutcome"}, "observations": None})
    assert result.missing == ["conditions"]


def test_searchset_entries_and_single_resources() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": CONDITION, "search": {"mode": "match"}},
            {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}},
            {
                "fullUrl": "urn:uuid:p1",
                "resource": {"resourceType": "Patient", "id": "p1"},
                "search": {"mode": "include"},
            },
        ],
    }
    result = read_prefetch(
        TEMPLATES, {"conditions": bundle, "observations": {"resourceType": "Observation", "id": "o"}}
    )
    assert [r["resourceType"] for r in result.resources] == ["Condition", "Patient", "Observation"]
    assert result.aliases == {"urn:uuid:p1"}
    assert result.missing == []


@pytest.mark.parametrize("value", ["text", 3, [CONDITION], {"id": "no-type"}])
def test_values_that_are_not_fhir_are_bad_requests(value: object) -> None:
    with pytest.raises(BadRequest, match="conditions"):
        read_prefetch(TEMPLATES, {"conditions": value, "observations": None})


def test_render_query_fills_tokens() -> None:
    assert render_query("Condition?patient={{context.patientId}}", {"patientId": "p1"}) == "Condition?patient=p1"
    assert render_query("Practitioner/{{userPractitionerId}}", {"userId": "Practitioner/dr"}) == "Practitioner/dr"
    assert render_query("Encounter/{{context.encounterId}}", {"patientId": "p1"}) is None
    assert render_query("Patient/{{userPatientId}}", {"userId": "Patient/me"}) == "Patient/me"
    assert render_query("RelatedPerson/{{userRelatedPersonId}}", {"userId": "RelatedPerson/mum"}) == "RelatedPerson/mum"
    assert render_query("Practitioner/{{userPractitionerId}}", {"userId": "Patient/me"}) is None
    assert render_query("Bundle?x={{context.draftOrders}}", {"draftOrders": {"resourceType": "Bundle"}}) is None


@pytest.mark.parametrize("entries", [{}, "x", 3])
def test_a_bundle_whose_entries_cannot_be_read_is_not_prefetched_and_is_named(entries: object) -> None:
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    result = read_prefetch(TEMPLATES, {"conditions": bundle, "observations": None})
    assert result.missing == ["conditions"]  # fetched from the FHIR server, or a 412: never "no data"
    assert [(p.reference, p.location) for p in result.problems] == [("prefetch.conditions", "Bundle.entry")]


def test_entries_without_a_resource_object_are_skipped_and_named() -> None:
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [7, {"resource": "x"}, {"resource": CONDITION}]}
    result = read_prefetch(TEMPLATES, {"conditions": bundle, "observations": None})
    assert result.resources == [CONDITION]
    assert [p.location for p in result.problems] == ["Bundle.entry[0]", "Bundle.entry[1]"]


def test_an_entry_whose_search_is_not_an_object_is_read_and_named() -> None:
    """`search` must be an object; a malformed one says nothing about the resource, so it is read (never a 500)."""
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": CONDITION, "search": "match"}]}
    result = read_prefetch(TEMPLATES, {"conditions": bundle, "observations": None})
    assert result.resources == [CONDITION]
    assert [(p.location, p.outcome) for p in result.problems] == [("Bundle.entry[0].search", "counted")]


def test_resources_no_rule_reads_are_left_out_as_entries_are_read_and_patients_are_kept() -> None:
    keep = {"c-keep", "o-keep"}
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "Condition", "id": "c-keep"}},
            {"resource": {"resourceType": "Condition", "id": "c-drop"}},
            {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "p1"}},
        ],
    }
    result = read_prefetch(
        TEMPLATES,
        {"conditions": bundle, "observations": {"resourceType": "Observation", "id": "o-drop"}},
        keep=lambda resource: resource.get("id") in keep,
    )
    assert [r["id"] for r in result.resources] == ["c-keep", "p1"]
    assert result.aliases == {"urn:uuid:p1"}
    assert result.read == ["conditions", "observations"]  # a key whose resources were all left out was still read


@pytest.mark.parametrize("kind", [[], ["Observation"], {"a": 1}, 5, None], ids=repr)
def test_a_resource_whose_type_is_not_a_string_is_named_and_not_read(kind: object) -> None:
    """Seen as a 500 on the hook path; it may have been meant as a warning sign, so it is named, never dropped."""
    bundle = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": kind}}, {"resource": CONDITION}]}
    result = read_prefetch(TEMPLATES, {"conditions": bundle, "observations": None}, keep=lambda _: True)
    assert result.resources == [CONDITION]
    assert [(p.location, p.outcome) for p in result.problems] == [
        ("Bundle.entry[0].resource.resourceType", "set aside")
    ]
