from typing import Any

import pytest

from service.engine.valuesets import CodeIndex, ValueSetError, parse_valueset
from service.fhir.codes import ICD10, ICD10CM, SNOMED


def vs(include: list[dict[str, Any]], exclude: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    compose: dict[str, Any] = {"include": include}
    if exclude:
        compose["exclude"] = exclude
    return {"resourceType": "ValueSet", "id": "t", "status": "active", "compose": compose, **extra}


def index(raw: dict[str, Any]) -> CodeIndex:
    return CodeIndex({"t": parse_valueset(raw, "t")})


def test_icd_is_a_is_a_prefix_and_blocks_expand() -> None:
    codes = index(
        vs(
            [{"system": ICD10CM, "filter": [{"property": "concept", "op": "is-a", "value": "C00-C96"}]}],
            [{"system": ICD10CM, "filter": [{"property": "concept", "op": "is-a", "value": "C44"}]}],
        )
    )
    assert codes.lookup((ICD10CM, "C50911")) == {"t"}
    assert codes.lookup((ICD10CM, "C96")) == {"t"}
    assert codes.lookup((ICD10CM, "C4491")) == frozenset()
    assert codes.lookup((ICD10CM, "D05")) == frozenset()
    assert codes.lookup((ICD10, "C50")) == frozenset()  # ICD-10 (WHO) is another system


def test_concepts_and_pasted_expansions() -> None:
    raw = vs([{"system": "urn:oid:2.16.840.1.113883.6.96", "concept": [{"code": "26544005"}]}])
    raw["expansion"] = {"timestamp": "2026-01-01T00:00:00Z", "contains": [{"system": SNOMED, "code": "44077006"}]}
    codes = index(raw)
    assert codes.lookup((SNOMED, "26544005")) == {"t"}
    assert codes.lookup((SNOMED, "44077006")) == {"t"}


@pytest.mark.parametrize(
    ("include", "location"),
    [
        (
            [{"system": SNOMED, "filter": [{"property": "concept", "op": "is-a", "value": "363346000"}]}],
            "ValueSet.compose.include[0].filter[0]",
        ),
        (
            [{"system": ICD10CM, "filter": [{"property": "concept", "op": "regex", "value": "C.*"}]}],
            "ValueSet.compose.include[0].filter[0]",
        ),
        ([{"system": SNOMED, "valueSet": ["http://example.org/vs"]}], "ValueSet.compose.include[0].valueSet"),
        ([{"system": SNOMED}], "ValueSet.compose.include[0]"),
        (
            [{"system": ICD10CM, "filter": [{"property": "concept", "op": "is-a", "value": "C00-D49"}]}],
            "ValueSet.compose.include[0].filter[0]",
        ),
    ],
)
def test_unsupported_compositions_are_refused_with_a_location(include: list[dict[str, Any]], location: str) -> None:
    with pytest.raises(ValueSetError) as caught:
        parse_valueset(vs(include), "t")
    assert caught.value.location == location


def test_alphanumeric_icd_categories_sit_in_their_block() -> None:
    codes = index(vs([{"system": ICD10CM, "filter": [{"property": "concept", "op": "is-a", "value": "C00-C96"}]}]))
    assert codes.lookup((ICD10CM, "C4A9")) == {"t"}  # Merkel cell carcinoma
    assert codes.lookup((ICD10CM, "C7B00")) == {"t"}
    assert codes.lookup((ICD10CM, "D4A")) == frozenset()


def test_snomed_is_a_is_refused_without_an_expansion_and_read_from_one() -> None:
    intensional = vs([{"system": SNOMED, "filter": [{"property": "concept", "op": "is-a", "value": "363346000"}]}])
    with pytest.raises(ValueSetError, match="rules expand --server"):
        parse_valueset(intensional, "t")
    expanded = {
        **intensional,
        "expansion": {
            "timestamp": "2026-11-25T00:00:00Z",
            "contains": [{"system": SNOMED, "code": "363346000"}, {"system": SNOMED, "code": "314994000"}],
        },
    }
    assert index(expanded).lookup((SNOMED, "314994000")) == {"t"}


def test_a_value_set_may_include_others_and_keeps_their_exclusions() -> None:
    def local(vs_id: str, include: list[dict[str, Any]], exclude: list[dict[str, Any]] | None = None) -> Any:
        raw = {**vs(include, exclude), "id": vs_id, "url": f"https://x.org/ValueSet/{vs_id}"}
        return parse_valueset(raw, vs_id)

    icd = {"system": ICD10CM, "filter": [{"property": "concept", "op": "is-a", "value": "R20"}]}
    sensory = local("sensory", [icd], [{"system": ICD10CM, "concept": [{"code": "R20.3"}]}])
    gait = local("gait", [{"system": SNOMED, "concept": [{"code": "719232003"}]}])
    neuro = local("neuro", [{"valueSet": ["https://x.org/ValueSet/sensory", "https://x.org/ValueSet/gait"]}])
    codes = CodeIndex({"sensory": sensory, "gait": gait, "neuro": neuro})
    assert codes.lookup((ICD10CM, "R202")) == {"sensory", "neuro"}
    assert codes.lookup((SNOMED, "719232003")) == {"gait", "neuro"}
    assert codes.lookup((ICD10CM, "R203")) == frozenset()


def test_include_problems_are_named() -> None:
    from service.engine.valuesets import resolve_includes

    a = parse_valueset(
        {**vs([{"valueSet": ["https://x.org/ValueSet/b"]}]), "id": "a", "url": "https://x.org/ValueSet/a"}, "a"
    )
    b = parse_valueset(
        {**vs([{"valueSet": ["https://x.org/ValueSet/a"]}]), "id": "b", "url": "https://x.org/ValueSet/b"}, "b"
    )
    c = parse_valueset(
        {**vs([{"valueSet": ["https://x.org/ValueSet/none"]}]), "id": "c", "url": "https://x.org/ValueSet/c"}, "c"
    )
    problems = resolve_includes({"a": a, "b": b, "c": c})
    assert "itself" in problems["a"]
    assert "itself" in problems["b"]
    assert "unknown" in problems["c"]


def test_a_code_without_system_is_found_in_any_system_for_reporting_only() -> None:
    codes = index(
        vs(
            [
                {"system": ICD10CM, "filter": [{"property": "concept", "op": "is-a", "value": "C50"}]},
                {"system": SNOMED, "concept": [{"code": "254837009"}]},
            ]
        )
    )
    assert codes.lookup_any_system("C50.9") == {"t"}
    assert codes.lookup_any_system("254837009") == {"t"}
    assert codes.lookup_any_system("999") == frozenset()


def test_id_must_match_file_and_resource_must_be_valid() -> None:
    with pytest.raises(ValueSetError, match="file name"):
        parse_valueset(vs([{"system": SNOMED, "concept": [{"code": "1"}]}]), "other")
    with pytest.raises(ValueSetError) as caught:
        parse_valueset({"resourceType": "ValueSet", "id": "t", "status": 5}, "t")
    assert caught.value.location.startswith("ValueSet.status")
