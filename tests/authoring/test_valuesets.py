"""The review rules that turn published code lists into value sets."""

from __future__ import annotations

import pytest

from authoring.published import PublishedCode
from authoring.valuesets import cancer_verdict, regional_spine_imaging_verdict
from service.fhir.codes import LOINC, SNOMED


def code(display: str, system: str = SNOMED, active: bool = True) -> PublishedCode:
    return PublishedCode(system, "1", display, "list", "file", active, "file.csv")


@pytest.mark.parametrize(
    "display",
    [
        "Metastasis from malignant tumor of prostate (disorder)",
        "Hypernephroma (disorder)",
        "Pancoast tumor (disorder)",
        "Paget's disease of nipple (disorder)",
        "Burkitt's lymphoma associated with acquired immunodeficiency syndrome (disorder)",
        "Breast cancer detected by national screening programme (disorder)",
        "History of malignant neoplasm of breast (situation)",
        "Malignant melanoma of skin of trunk (disorder)",
    ],
)
def test_invasive_cancers_and_their_history_are_kept(display: str) -> None:
    assert cancer_verdict(code(display)) is None


@pytest.mark.parametrize(
    ("display", "reason"),
    [
        ("Carcinoma in situ of prostate (disorder)", "in situ"),
        ("Neoplasm of uncertain behavior of meninges (disorder)", "benign or uncertain"),
        ("Neoplasm of prostate (disorder)", "states no malignancy"),
        ("Suspected lung cancer (situation)", "semantic tag"),
        ("Suspected malignant neoplasm of breast (disorder)", "not a diagnosis"),
        ("Myelodysplastic syndrome (disorder)", "myelodysplastic"),
        ("Basal cell carcinoma of skin of face (disorder)", "non-melanoma skin"),
        ("Malignant neoplasm of skin of nose (external) (disorder)", "non-melanoma skin"),
        ("Adenocarcinoma, no subtype (morphologic abnormality)", "semantic tag"),
        ("Family history of malignant neoplasm (situation)", "semantic tag"),
    ],
)
def test_what_is_not_an_invasive_cancer_is_left_out_with_its_reason(display: str, reason: str) -> None:
    verdict = cancer_verdict(code(display))
    assert verdict is not None
    assert reason in verdict


def test_inactive_concepts_are_left_out() -> None:
    assert cancer_verdict(code("Malignant neoplasm of breast (disorder)", active=False)) == (
        "inactive concept (the source marks it so)"
    )


@pytest.mark.parametrize(
    ("display", "kept"),
    [
        ("MR Lumbar spine WO contrast", True),
        ("XR Cervical and thoracic and lumbar spine Views", True),  # an X-ray of the whole spine still misses it
        ("CT Thoracic spine", True),
        ("MR Cervical and thoracic and lumbar spine", False),  # the whole-spine MRI itself
        ("MR Spine WO contrast", False),  # no region stated
        ("RF Spine Views W contrast intradisc", False),
        ("MRA Spine", False),
    ],
)
def test_regional_spine_imaging(display: str, kept: bool) -> None:
    assert (regional_spine_imaging_verdict(code(display, LOINC)) is None) == kept
