import pytest

from service.errors import InvalidFhir
from service.fhir.bundle import read_patient_bundle
from tests.helpers import patient_bundle


def test_patient_and_aliases_come_from_the_bundle() -> None:
    bundle = read_patient_bundle(patient_bundle("01-mscc-breast-cancer-leg-weakness"))
    assert bundle.patient_id == "p01"
    assert "http://example.org/fhir/Patient/p01" in bundle.aliases
    assert len(bundle.resources) == 4


def test_without_a_patient_the_single_subject_is_the_patient() -> None:
    raw = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/x"}}}],
    }
    assert read_patient_bundle(raw).patient_id == "x"


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"resourceType": "Patient"}, "Bundle"),
        ({"resourceType": "Bundle", "type": "not-a-type"}, "Bundle.type"),
        ({"resourceType": "Bundle", "type": "collection", "entry": [{"nope": 1}]}, "Bundle.entry[0]"),
        (
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [
                    {"resource": {"resourceType": "Patient", "id": "a"}},
                    {"resource": {"resourceType": "Patient", "id": "b"}},
                ],
            },
            "Bundle.entry",
        ),
        ({"resourceType": "Bundle", "type": "collection", "entry": []}, "Bundle.entry"),
        (  # seen as a 500 on /evaluate: a list cannot be looked up in a set of types
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": []}}]},
            "Bundle.entry[0].resource.resourceType",
        ),
    ],
)
def test_bundles_that_name_no_single_patient_or_break_fhir(raw: dict, where: str) -> None:
    with pytest.raises(InvalidFhir) as caught:
        read_patient_bundle(raw)
    assert caught.value.problems[0][0] == where
