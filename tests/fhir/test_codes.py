import pytest

from service.fhir.codes import ICD10, ICD10CM, LOINC, SNOMED, canonical_system, coding_key


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://snomed.info/sct", SNOMED),
        ("https://snomed.info/sct/", SNOMED),
        ("http://snomed.info/sct/900000000000207008", SNOMED),
        ("urn:oid:2.16.840.1.113883.6.96", SNOMED),
        ("urn:oid:2.16.840.1.113883.6.90", ICD10CM),
        ("http://hl7.org/fhir/sid/icd-10-cm", ICD10CM),
        ("urn:oid:2.16.840.1.113883.6.3", ICD10),
        ("http://hl7.org/fhir/sid/icd-10", ICD10),
        ("urn:oid:2.16.840.1.113883.6.1", LOINC),
        ("http://loinc.org/", LOINC),
        ("http://example.org/local", "http://example.org/local"),
    ],
)
def test_system_variants_collapse_to_one_uri(given: str, expected: str) -> None:
    assert canonical_system(given) == expected


def test_icd_codes_match_with_or_without_dot_and_case() -> None:
    assert coding_key(ICD10CM, "c79.51") == coding_key("urn:oid:2.16.840.1.113883.6.90", "C7951") == (ICD10CM, "C7951")


def test_snomed_codes_are_only_trimmed() -> None:
    assert coding_key(SNOMED, " 26544005 ") == (SNOMED, "26544005")


@pytest.mark.parametrize(("system", "code"), [(None, "1"), ("", "1"), (SNOMED, ""), (SNOMED, None), (SNOMED, "  ")])
def test_codings_that_cannot_match_have_no_key(system: str | None, code: str | None) -> None:
    assert coding_key(system, code) is None
