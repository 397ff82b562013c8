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
        ([{"valueSet": ["http://example.org/vs"]}], "ValueSet.compose.include[0].valueSet"),
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


def test_id_must_match_file_and_resource_must_be_valid() -> None:
    with pytest.raises(ValueSetError, match="file name"):
        parse_valueset(vs([{"system": SNOMED, "concept": [{"code": "1"}]}]), "other")
    with pytest.raises(ValueSetError) as caught:
        parse_valueset({"resourceType": "ValueSet", "id": "t", "status": 5}, "t")
    assert caught.value.location.startswith("ValueSet.status")


def test_every_code_in_shared_codes_md_is_in_a_value_set(ruleset) -> None:
    """The minimum lists in shared/clinical/codes.md: each listed code must be held by some value set."""
    expected = {
        ICD10CM: [
            "C50.911",
            "C79.51",
            "C79.52",
            "C79.49",
            "Z85.3",
            "G95.20",
            "G95.29",
            "G83.4",
            "G82.20",
            "G82.50",
            "M62.81",
            "R53.1",
            "R26.2",
            "R26.89",
            "R26.9",
            "R20.0",
            "R20.1",
            "R20.2",
            "R20.9",
            "R33.9",
            "R33.8",
            "R32",
            "N39.41",
            "R15.9",
            "N31.9",
            "M54.50",
            "M54.59",
            "M54.6",
            "M54.2",
            "M54.89",
            "M54.9",
            "M54.16",
            "M84.58XA",
            "M48.50XA",
        ],
        SNOMED: [
            "363346000",
            "254837009",
            "254637007",
            "254632001",
            "399068003",
            "109989006",
            "94222008",
            "26544005",
            "22325002",
            "44077006",
            "267064002",
            "165232002",
            "72042002",
            "279039007",
            "81680005",
            "161891005",
        ],
        "http://loinc.org": ["72514-3"],
    }
    from service.fhir.codes import coding_key

    missing = [f"{s}|{c}" for s, codes in expected.items() for c in codes if not ruleset.codes.lookup(coding_key(s, c))]
    assert missing == []
