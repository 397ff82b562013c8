"""Value sets checked like code: unknown systems, codes that do not exist and value sets that hold nothing stop the
rule set, each named with its file, line and code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from service.engine.codecheck import (
    WrittenCode,
    code_problem,
    code_problems,
    loinc_check_digit,
    verhoeff_valid,
    written_codes,
)
from service.engine.loader import load_ruleset
from service.engine.terminology import load_editions
from service.errors import RuleSetInvalid
from service.fhir.codes import CPT, ICD10, ICD10CM, LOINC, RXNORM, SNOMED
from tests.helpers import copy_rules

EDITIONS, _ = load_editions(Path(__file__).resolve().parents[2] / "rules")


def problems(rules: Path, site: Path | None = None) -> list[str]:
    with pytest.raises(RuleSetInvalid) as caught:
        load_ruleset(rules, site)
    return [str(p) for p in caught.value.problems]


def edit_json(path: Path, change: object) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    change(raw)  # type: ignore[operator]
    path.write_text(json.dumps(raw, indent=2), encoding="utf-8")


@pytest.mark.parametrize("sctid", ["363346000", "94503003", "71642004", "107691000119101", "1090901000000102"])
def test_real_snomed_identifiers_pass_their_check_digit(sctid: str) -> None:
    assert verhoeff_valid(sctid)
    assert code_problem(SNOMED, sctid, EDITIONS) is None


@pytest.mark.parametrize(
    ("code", "said"),
    [
        ("363346001", "check digit is wrong"),  # one digit off
        ("363436000", "check digit is wrong"),  # two digits swapped
        ("363346010", "partition is 01"),  # a description id, not a concept
        ("12345", "6 to 18 digits"),
        ("C79.51", "6 to 18 digits"),
    ],
)
def test_snomed_typos_are_caught_without_a_terminology_server(code: str, said: str) -> None:
    assert said in (code_problem(SNOMED, code, EDITIONS) or "")


def test_loinc_codes_carry_their_check_digit() -> None:
    assert loinc_check_digit("72514") == 3
    assert loinc_check_digit("38208") == 5
    assert loinc_check_digit("24558") == 9
    assert code_problem(LOINC, "72514-3", EDITIONS) is None
    assert "check digit is wrong" in (code_problem(LOINC, "72514-4", EDITIONS) or "")
    assert "not a LOINC code" in (code_problem(LOINC, "72514", EDITIONS) or "")


@pytest.mark.parametrize(
    ("system", "code", "ok"),
    [
        (ICD10CM, "C79.51", True),
        (ICD10CM, "C7951", True),
        (ICD10CM, "G95.20", True),
        (ICD10CM, "C79.59", False),  # not in ICD-10-CM
        (ICD10CM, "G95.2X", False),
        (ICD10, "C79.5", True),
        (ICD10, "C79.51", False),  # an ICD-10-CM subdivision WHO ICD-10 does not have
        (ICD10, "G95.2", True),
        (RXNORM, "7804", True),
        (RXNORM, "oxycodone", False),
        (CPT, "72156", True),
        (CPT, "7215", False),
    ],
)
def test_codes_are_checked_in_their_edition(system: str, code: str, ok: bool) -> None:
    assert (code_problem(system, code, EDITIONS) is None) is ok


def test_icd_blocks_are_checked_at_both_ends() -> None:
    assert code_problem(ICD10CM, "C00-C96", EDITIONS, is_a=True) is None
    assert code_problem(ICD10, "C00-C97", EDITIONS, is_a=True) is None
    assert "C9Z" in (code_problem(ICD10CM, "C00-C9Z", EDITIONS, is_a=True) or "")


def test_written_codes_name_their_json_location() -> None:
    raw = {
        "compose": {
            "include": [{"system": LOINC, "concept": [{"code": "72514-3"}, {"code": "1-1"}]}],
            "exclude": [{"system": ICD10CM, "filter": [{"property": "concept", "op": "is-a", "value": "C44"}]}],
        },
        "expansion": {"contains": [{"system": SNOMED, "code": "363346000"}]},
    }
    written = written_codes(raw)
    assert [w.location for w in written] == [
        "ValueSet.compose.include[0].concept[0].code",
        "ValueSet.compose.include[0].concept[1].code",
        "ValueSet.compose.exclude[0].filter[0].value",
        "ValueSet.expansion.contains[0].code",
    ]
    assert code_problems(written, EDITIONS) == [
        ("ValueSet.compose.include[0].concept[1].code", "1-1 is not a LOINC code: its check digit is wrong (a typo?)")
    ]


def test_an_unknown_system_is_reported_once_per_include_and_a_local_one_only_when_declared() -> None:
    written = tuple(WrittenCode(f"x.concept[{i}].code", "x.system", "urn:local:formulary", f"C{i}") for i in range(3))
    found = code_problems(written, EDITIONS)
    assert len(found) == 1
    assert found[0][0] == "x.system"
    assert "unknown code system" in found[0][1]
    assert code_problems(written, EDITIONS, frozenset({"urn:local:formulary"})) == []


def test_a_misspelt_system_stops_the_rule_set_naming_file_line_and_system(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path)
    path = rules / "valuesets" / "pain-severity-score.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"http://loinc.org"', '"http://loinc.og"', 1))
    found = problems(rules)
    assert found == [
        "rules/valuesets/pain-severity-score.json:25: ValueSet.compose.include[0].system: unknown code system "
        "'http://loinc.og': no patient coding will ever match it; use one of http://hl7.org/fhir/sid/icd-10, "
        "http://hl7.org/fhir/sid/icd-10-cm, http://loinc.org, http://snomed.info/sct, "
        "http://www.ama-assn.org/go/cpt, http://www.nlm.nih.gov/research/umls/rxnorm, or declare a hospital's own "
        "system under local_systems in the site's site.yaml"
    ]


def test_codes_that_do_not_exist_stop_the_rule_set_each_named(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path)
    path = rules / "valuesets" / "pain-severity-score.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"72514-3"', '"72514-4"', 1))
    cancer = rules / "valuesets" / "cancer.json"
    cancer.write_text(cancer.read_text(encoding="utf-8").replace('"value": "Z85"', '"value": "Z8X"', 1))
    found = problems(rules)
    assert any(p.startswith("rules/valuesets/pain-severity-score.json:") and "72514-4" in p for p in found)
    assert any(
        p.startswith("rules/valuesets/cancer.json:")
        and "ValueSet.compose.include[0].filter[1].value: Z8X is not a code of ICD-10-CM" in p
        for p in found
    )
    assert len(found) == 2


def test_a_value_set_its_excludes_empty_stops_the_rule_set(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path)

    def exclude_everything(raw: dict) -> None:  # type: ignore[type-arg]
        raw["compose"]["exclude"] = [dict(part, extension=[]) for part in raw["compose"]["include"]]

    edit_json(rules / "valuesets" / "pain-severity-score.json", exclude_everything)
    emptied = [p for p in problems(rules) if "expands to nothing" in p]
    assert len(emptied) == 1
    assert re.match(
        r"^rules/valuesets/pain-severity-score\.json:\d+: ValueSet\.compose\.exclude: expands to nothing", emptied[0]
    )


def test_a_site_code_in_an_undeclared_system_or_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    (site / "site.yaml").write_text(
        "site: Test Hospital\n"
        "valuesets:\n"
        "  analgesics-rxnorm:\n"
        "    - system: urn:test-hospital:formulary\n"
        "      source: local formulary\n"
        "      concepts: [{code: OXY-5, display: Oxycodone 5 mg}]\n"
        "  spine-imaging-not-whole-spine-mri:\n"
        "    - system: http://www.ama-assn.org/go/cpt\n"
        "      source: radiology catalogue\n"
        "      concepts: [{code: '7213', display: CT lumbar spine}]\n",
        encoding="utf-8",
    )
    found = problems(rules, site)
    assert any(
        "valuesets.analgesics-rxnorm[0].system: unknown code system 'urn:test-hospital:formulary'" in p for p in found
    )
    assert any(
        "valuesets.spine-imaging-not-whole-spine-mri[0].concepts[0].code: 7213 is not a CPT code" in p for p in found
    )
    text = (site / "site.yaml").read_text(encoding="utf-8")
    (site / "site.yaml").write_text(
        text.replace("'7213'", "'72131'").replace(
            "valuesets:\n", "local_systems: [urn:test-hospital:formulary]\nvaluesets:\n"
        ),
        encoding="utf-8",
    )
    assert load_ruleset(rules, site).site is not None


def test_a_missing_code_list_stops_the_rule_set(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path)
    (rules / "terminology" / "icd-10.codes").unlink()
    assert any(p.startswith("rules/terminology/icd-10.codes: cannot be read") for p in problems(rules))
