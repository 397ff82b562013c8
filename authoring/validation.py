"""Clinical validation: every rule version over the example patients, the real published records and a generated
matrix of red flags, against the reviewed answers in `rules/validation/expected.yaml`.

`python -m authoring validate` (`make validate`) prints sensitivity and specificity per rule version and every
disagreement; `tests/authoring/test_validation.py` makes `make test` fail on a safety failure of the active rules:
an emergency of the matrix without its critical card, a card for a real record without a red flag, or an invasive
cancer in a real record that is not recognised.
"""

from __future__ import annotations

import copy
import gzip
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from authoring.deadlinecheck import DeadlineCase, DeadlineTally, check_case
from service.cdshooks.cards import CardContext, render_card
from service.config import PROJECT_ROOT
from service.engine.decide import decide_rule
from service.engine.evaluation import evaluate_record
from service.engine.factindex import FactIndex
from service.engine.loader import load_ruleset
from service.engine.ruleset import CompiledRule, RuleSet
from service.engine.yamlfile import load_yaml
from service.fhir.bundle import read_patient_bundle
from service.fhir.codes import ICD10CM, LOINC, SNOMED
from service.fhir.dates import parse_fhir_time
from service.fhir.record import PatientRecord, build_record

EXPECTED = PROJECT_ROOT / "rules" / "validation" / "expected.yaml"
REALDATA = PROJECT_ROOT / "fhir_examples" / "realdata"  # copied in with PROVENANCE.md
EXAMPLES = PROJECT_ROOT / "fhir_examples"
CRITICAL_RULE = "mscc-suspected"
_WHO_OID = "urn:oid:2.16.840.1.113883.6.3"
_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_DATE_FIELDS = ("effectiveDateTime", "issued", "recordedDate", "onsetDateTime", "authoredOn", "started")


@dataclass
class ValidationCase:
    """One patient to evaluate and what the reviewed table says must happen."""

    source: str  # matrix | example | real record
    name: str
    patient_id: str
    resources: list[dict[str, Any]]
    now: datetime
    card: str  # critical | warning | none: the card the active rules must give
    expected_rules: frozenset[str]  # rule ids that must fire
    invasive_cancer: bool | None = None  # real records: must the cancer criterion hold?
    aliases: frozenset[str] = frozenset()  # other references that name the patient (Bundle fullUrls)
    encounter: str | None = None  # the hook's encounter (context.encounterId), for diagnoses made at it


@dataclass
class Tally:
    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0

    @staticmethod
    def _rate(hits: int, total: int) -> str:
        return f"{100 * hits / total:5.1f}% ({hits}/{total})" if total else "   n/a (0 expected)"

    @property
    def sensitivity(self) -> str:
        return self._rate(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> str:
        return self._rate(self.tn, self.tn + self.fp)


@dataclass
class Report:
    cases: list[ValidationCase]
    tallies: dict[str, Tally] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    disagreements: list[str] = field(default_factory=list)  # any rule version vs the table
    safety_failures: list[str] = field(default_factory=list)  # the active rules' card vs the table
    deadlines: DeadlineTally = field(default_factory=DeadlineTally)  # the deadline hooks, late and in time


# --- the matrix ---------------------------------------------------------------------------------------------------


def _concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _finding_code(flag: dict[str, Any]) -> dict[str, Any]:
    """The code an Observation records the red flag with: SNOMED CT, else ICD-10-CM."""
    return _concept(SNOMED, flag["snomed"]) if flag.get("snomed") else _concept(ICD10CM, flag["icd10cm"])


def _condition(form: str, flag: dict[str, Any]) -> dict[str, Any] | None:
    codes = {
        "snomed-condition": (SNOMED, flag.get("snomed")),
        "icd10cm-condition": (ICD10CM, flag.get("icd10cm")),
        "icd10cm-no-dot": (ICD10CM, (flag.get("icd10cm") or "").replace(".", "") or None),
        "icd10-who-oid": (_WHO_OID, (flag.get("icd10") or "").replace(".", "") or None),
    }
    system, code = codes[form]
    if code is None:
        return None
    return {"resourceType": "Condition", "code": _concept(system, code)}


def _observation(form: str, flag: dict[str, Any]) -> dict[str, Any]:
    finding = _finding_code(flag)
    if form == "observation-symptom":
        return {"resourceType": "Observation", "status": "final", "code": _concept(LOINC, "75325-1"),
                "valueCodeableConcept": finding}  # fmt: skip
    if form == "observation-boolean":
        return {"resourceType": "Observation", "status": "final", "code": finding, "valueBoolean": True}
    return {"resourceType": "Observation", "status": "final", "code": finding,
            "valueCodeableConcept": _concept(SNOMED, "52101004")}  # fmt: skip


_ENCOUNTER = "matrix-encounter"
_DAYS_AGO = {"old": 120, "unimaged": 45, "imaged-since": 45}  # when the red flag began, by state (else 2 days ago)
_MRI = {"resourceType": "ImagingStudy", "id": "mri", "status": "available", "subject": {"reference": "Patient/m"},
        "procedureCode": [{"coding": [{"system": LOINC, "code": "30854-4"}]}]}  # fmt: skip


def _ago(now: datetime, days: int) -> str:
    return (now - timedelta(days=days)).date().isoformat()


def _condition_state(r: dict[str, Any], state: str, now: datetime, flag: dict[str, Any]) -> dict[str, Any] | None:
    days = _DAYS_AGO.get(state, 2)
    r["recordedDate"] = _ago(now, 2 if state == "old" else days)
    if state == "old":  # long-standing: began 120 days ago, re-recorded this admission
        r["onsetDateTime"] = _ago(now, days)
    if state in ("undated-no-status", "encounter-undated"):
        del r["recordedDate"]
        if state == "encounter-undated":
            r["encounter"] = {"reference": f"Encounter/{_ENCOUNTER}"}
        return r
    if state == "local-text":  # the hospital's own code; the finding is named only in words
        r["code"] = {
            "coding": [{"system": "https://hospital.example.org/codes", "code": "X1", "display": flag["concept"]}]
        }
    if state in ("denied-negative", "denied-text", "interpretation-neg", "component"):
        return None  # answers and panels are Observations
    clinical = "resolved" if state == "resolved" else "active"
    verification = {"refuted": "refuted", "entered-in-error": "entered-in-error"}.get(state, "confirmed")
    r["clinicalStatus"] = _concept(_CLINICAL, clinical)
    r["verificationStatus"] = _concept(_VERIFICATION, verification)
    return r


def _observation_state(r: dict[str, Any], state: str, now: datetime) -> dict[str, Any] | None:
    if state in ("resolved", "undated-no-status", "encounter-undated", "local-text"):
        return None  # a clinical status, an encounter diagnosis and a local code are the Condition forms' states
    symptom_question = r["code"]["coding"][0]["code"] == "75325-1"
    r["effectiveDateTime"] = _ago(now, _DAYS_AGO.get(state, 2))
    if state == "entered-in-error":
        r["status"] = "entered-in-error"
    if state in ("refuted", "denied-negative", "denied-text"):  # an Observation says the finding is absent
        if symptom_question:
            return None  # "which symptom?" has no way to say "not this one"
        r.pop("valueBoolean", None)
        r.pop("valueCodeableConcept", None)
        if state == "refuted":
            r["valueCodeableConcept"] = _concept(SNOMED, "2667000")
        elif state == "denied-negative":
            r["valueCodeableConcept"] = _concept(SNOMED, "260385009")
        else:
            r["valueString"] = "Patient denies"
    if state == "interpretation-neg":
        if symptom_question or "valueBoolean" in r:
            return None
        r.pop("valueCodeableConcept", None)
        r["interpretation"] = [_concept("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "NEG")]
    if state == "component":  # a nursing panel under a local code; the finding is one of its components
        if symptom_question or "valueBoolean" in r:
            return None
        finding = {"code": r.pop("code"), "valueCodeableConcept": r.pop("valueCodeableConcept")}
        r["code"] = {
            "coding": [{"system": "https://hospital.example.org/flowsheets", "code": "NEURO", "display": "Neuro"}]
        }
        r["component"] = [finding]
    return r


def _in_state(resource: dict[str, Any], state: str, now: datetime, flag: dict[str, Any]) -> dict[str, Any] | None:
    """The red-flag resource recorded in a FHIR state; None where the state has no meaning for it."""
    r = copy.deepcopy(resource)
    if r["resourceType"] == "Condition":
        return _condition_state(r, state, now, flag)
    return _observation_state(r, state, now)


def _extra(state: str, now: datetime) -> list[dict[str, Any]]:
    """Resources a state needs beside the red flag: a whole-spine MRI after (or before) the sign began."""
    if state == "imaged-since":
        return [{**_MRI, "started": f"{_ago(now, 40)}T10:00:00Z"}]
    if state == "mri-before":
        return [{**_MRI, "started": f"{_ago(now, 10)}T10:00:00Z"}]
    return []


def matrix_cases(table: dict[str, Any]) -> Iterator[ValidationCase]:
    """Every red flag x coding form x FHIR state, in a person with each background."""
    now = datetime.fromisoformat(table["now"].replace("Z", "+00:00"))
    for background in table["backgrounds"]:
        answers = table["expected"]["with_cancer" if background["cancer"] else "without_cancer"]
        for flag in table["red_flags"]:
            for form in table["forms"]:
                base = _observation(form, flag) if form.startswith("observation") else _condition(form, flag)
                if base is None:
                    continue
                for state, answer in answers.items():
                    if state == "local-text" and form != "snomed-condition":
                        continue  # words have no coding form: once per red flag
                    resource = _in_state(base, state, now, flag)
                    if resource is None:
                        continue
                    subject = "Patient/someone-else" if state == "other-patient" else "Patient/m"
                    resources = [{**resource, "id": "flag", "subject": {"reference": subject}}, *_extra(state, now)]
                    if "resource" in background:
                        resources.append(
                            {**background["resource"], "id": "cancer", "subject": {"reference": "Patient/m"}}
                        )
                    name = f"{background['name']} | {flag['concept']} | {form} | {state}"
                    rules = frozenset({CRITICAL_RULE}) if answer == "critical" else frozenset()
                    yield ValidationCase("matrix", name, "m", resources, now, answer, rules, encounter=_ENCOUNTER)


# --- examples and real records ------------------------------------------------------------------------------------


def example_cases(examples_dir: Path = EXAMPLES) -> Iterator[ValidationCase]:
    """The patient-view examples, with the answers written by hand in examples.yaml."""
    manifest = load_yaml(examples_dir / "examples.yaml")
    now = datetime.fromisoformat(manifest["now"])
    for example in manifest["examples"]:
        if example.get("service"):
            continue  # order hooks answer only for matching draft orders: a different question
        bundle = read_patient_bundle(json.loads((examples_dir / "patients" / f"{example['id']}.json").read_text()))
        expect = example["expect"]
        card = expect.get("indicator", "none") if expect.get("cards", 1) else "none"
        rules = frozenset(r.split("@")[0] for r in expect.get("rules", []))
        yield ValidationCase("example", example["id"], bundle.patient_id, bundle.resources, now, card, rules)


def _last_date(resources: list[dict[str, Any]]) -> datetime:
    times = [parse_fhir_time(r.get(name)) for r in resources for name in _DATE_FIELDS if isinstance(r.get(name), str)]
    return max(t.latest for t in times if t is not None)


def real_record_cases(table: dict[str, Any], folder: Path = REALDATA) -> Iterator[ValidationCase]:
    """Every published record, on the day after its last dated entry."""
    reviewed = table["real_records"]
    invasive, not_invasive = set(reviewed["invasive_cancer"]), set(reviewed["not_invasive"])

    def case(name: str, patient_id: str, resources: list[dict[str, Any]], aliases: set[str]) -> ValidationCase:
        cancer = True if name in invasive else False if name in not_invasive else None
        now = _last_date(resources) + timedelta(days=1)
        return ValidationCase(
            "real record", name, patient_id, resources, now, reviewed["card"], frozenset(), cancer, frozenset(aliases)
        )

    for path in sorted((folder / "smart-generated-sample-data-r4").glob("*.json.gz")):
        bundle = read_patient_bundle(json.loads(gzip.decompress(path.read_bytes())))
        yield case(path.name.removesuffix(".json.gz"), bundle.patient_id, bundle.resources, bundle.aliases)
    bulk = folder / "sample-bulk-fhir-datasets-10-patients"
    by_patient: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in gzip.decompress((bulk / "Condition.000.ndjson.gz").read_bytes()).decode().splitlines():
        resource = json.loads(line)
        by_patient[resource["subject"]["reference"].split("/")[-1]].append(resource)
    for line in gzip.decompress((bulk / "Patient.000.ndjson.gz").read_bytes()).decode().splitlines():
        patient_id = json.loads(line)["id"]
        if by_patient.get(patient_id):
            yield case(f"bulk/{patient_id}", patient_id, by_patient[patient_id], set())


# --- evaluation ---------------------------------------------------------------------------------------------------


def _record(case: ValidationCase, ruleset: RuleSet) -> PatientRecord:
    return build_record(
        case.patient_id,
        case.resources,
        patient_aliases=case.aliases,
        encounter_id=case.encounter,
        text=ruleset.text_path,
    )


def active_card(ruleset: RuleSet, record: PatientRecord, now: datetime) -> tuple[str, str | None]:
    """(indicator or 'none', lead rule id) of the card the active rules give, as patient-view renders it."""
    evaluation = evaluate_record(ruleset, record, now, hook="patient-view")
    card = render_card(evaluation, CardContext(lambda: "u"))
    if card is None:
        return "none", None
    return card.indicator, evaluation.lead.rule.id if evaluation.lead else None


def _versions(ruleset: RuleSet) -> list[CompiledRule]:
    return [v for versions in ruleset.rules.values() for v in versions.values()]


def validate_cases(ruleset: RuleSet, cases: list[ValidationCase]) -> Report:
    """Evaluate every case with every rule version (for the rates) and with the active rule set (for the gate)."""
    report = Report(cases)
    versions = _versions(ruleset)
    for rule in versions:
        report.tallies[rule.ref] = Tally()
        report.statuses[rule.ref] = rule.spec.status
    for case in cases:
        record = _record(case, ruleset)
        index = FactIndex(record, ruleset.codes, ruleset.text_reader)
        for rule in versions:
            fired = decide_rule(rule, index, case.now).fired
            wanted = rule.id in case.expected_rules
            tally = report.tallies[rule.ref]
            tally.tp += fired and wanted
            tally.fn += wanted and not fired
            tally.fp += fired and not wanted
            tally.tn += not fired and not wanted
            if fired != wanted:
                verb = "missed" if wanted else "fired on"
                report.disagreements.append(f"{rule.ref} [{rule.spec.status}] {verb}: {case.source}: {case.name}")
        indicator, lead = active_card(ruleset, record, case.now)
        if case.card == "critical" and (indicator, lead) != ("critical", CRITICAL_RULE):
            report.safety_failures.append(f"MISSED EMERGENCY ({indicator}): {case.source}: {case.name}")
        elif case.card == "none" and indicator != "none":
            report.safety_failures.append(f"UNEXPECTED {indicator.upper()} CARD ({lead}): {case.source}: {case.name}")
        elif case.card not in ("critical", "none") and indicator != case.card:
            report.safety_failures.append(f"WRONG CARD ({indicator}, expected {case.card}): {case.source}: {case.name}")
        check_deadlines(case, ruleset, report.deadlines)
        if case.invasive_cancer is not None:
            cancer = ruleset.version(CRITICAL_RULE)
            held = cancer is not None and decide_rule(cancer, index, case.now).criteria["cancer"].held
            if held != case.invasive_cancer:
                what = (
                    "invasive cancer NOT RECOGNISED" if case.invasive_cancer else "non-invasive neoplasm read as cancer"
                )
                report.safety_failures.append(f"{what}: {case.source}: {case.name}")
    report.safety_failures += report.deadlines.failures
    return report


def check_deadlines(case: ValidationCase, ruleset: RuleSet, tally: DeadlineTally) -> None:
    def build(resources: list[dict[str, Any]]) -> PatientRecord:
        return _record(replace(case, resources=resources), ruleset)

    seen = DeadlineCase(
        f"{case.source}: {case.name}", bool(case.expected_rules), case.resources, case.patient_id, case.now
    )
    check_case(seen, build, ruleset, tally)


def all_cases(table: dict[str, Any] | None = None) -> list[ValidationCase]:
    table = table or load_yaml(EXPECTED)
    return [*matrix_cases(table), *example_cases(), *real_record_cases(table)]


def render_report(report: Report, ruleset: RuleSet, shown: int = 40) -> str:
    counts: dict[str, int] = defaultdict(int)
    for case in report.cases:
        counts[case.source] += 1
    lines = [
        f"Clinical validation of rule set {ruleset.revision} against {EXPECTED.relative_to(PROJECT_ROOT)}",
        "  " + ", ".join(f"{n:,} {source} cases" for source, n in counts.items()),
        "",
        f"  {'rule version':<36} {'status':<8} {'sensitivity':<22} specificity",
    ]
    for ref, tally in sorted(report.tallies.items()):
        lines.append(f"  {ref:<36} {report.statuses[ref]:<8} {tally.sensitivity:<22} {tally.specificity}")
    active = [d for d in report.disagreements if "[active]" in d]
    others = [d for d in report.disagreements if "[active]" not in d]
    for title, items in (("active versions", active), ("draft and retired versions", others)):
        lines += ["", f"Disagreements, {title}: {len(items)}"]
        lines += [f"  {d}" for d in items[:shown]]
        if len(items) > shown:
            lines.append(f"  ... and {len(items) - shown} more")
    lines += report.deadlines.lines()
    lines += [
        "",
        f"Safety gate (active rules, as the clinician sees the card): {len(report.safety_failures)} failure(s)",
    ]
    lines += [f"  {f}" for f in report.safety_failures]
    lines.append("PASS" if not report.safety_failures else "FAIL")
    return "\n".join(lines)


def main() -> int:
    if not REALDATA.is_dir():
        print(f"the real records are not at {REALDATA}")
        return 2
    ruleset = load_ruleset(PROJECT_ROOT / "rules")
    report = validate_cases(ruleset, all_cases())
    print(render_report(report, ruleset))
    return 1 if report.safety_failures else 0
