"""Rule tests: cases beside each rule (`rules/<id>/tests/*.yaml`) that say whether a version fires on a patient.

A case gives a patient (inline resources, or a Bundle file such as one in fhir_examples/), an evaluation time
and what must happen: fires or not, and optionally which criteria held and which resources are evidence. A case
with a deadline `hook` also gives the appointments or the dispatch, and whether the hook gives a card.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.cdshooks.deadline import check_deadline
from service.config import PROJECT_ROOT
from service.engine.evaluation import evaluate_record
from service.engine.ruleset import RuleSet
from service.engine.yamlfile import load_yaml
from service.errors import InvalidFhir
from service.fhir.bundle import read_patient_bundle
from service.fhir.record import build_record

EXAMPLES_DIR = PROJECT_ROOT / "fhir_examples"
MIN_DEADLINE_CASES = 10  # per deadline hook, each way, across the rules: a clock is tested both ways


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Expectation(_Strict):
    fires: bool
    deadline_card: bool | None = Field(
        default=None,
        description="with `hook`: whether the deadline hook gives a card (the MRI misses the rule's deadline)",
    )
    criteria: dict[str, bool] = Field(default_factory=dict, description="criterion name: whether it must hold")
    evidence: list[str] = Field(default_factory=list, description="references (Type/id) that must be evidence")
    input_issues: list[str] = Field(
        default_factory=list,
        description="locations of the input problems the case is about (e.g. Observation.status); any other fails it",
    )


class RuleTestCase(_Strict):
    name: str = Field(min_length=1)
    now: AwareDatetime | None = None
    version: str | None = None
    patient_id: str | None = None
    resources: list[dict[str, Any]] | None = None
    example: str | None = Field(
        default=None, description="an example patient's id in fhir_examples/examples.yaml, e.g. 01-mscc-breast-cancer"
    )
    bundle: str | None = Field(default=None, description="path to another FHIR Bundle, relative to this file")
    encounter: str | None = Field(
        default=None, description="the hook's encounter id (context.encounterId): its Conditions are current, undated"
    )
    hook: Literal["appointment-book", "encounter-discharge", "order-dispatch"] | None = Field(
        default=None, description="a deadline hook: the case checks the MRI's timing against the rule's deadline"
    )
    appointments: list[dict[str, Any]] | None = Field(
        default=None,
        description="appointment-book: the proposed Appointments; encounter-discharge: the patient's Appointments",
    )
    dispatched: list[str] | None = Field(default=None, description="order-dispatch: the orders sent (Type/id)")
    tasks: list[dict[str, Any]] | None = Field(default=None, description="order-dispatch: the fulfilment Tasks")
    expect: Expectation

    @model_validator(mode="after")
    def _one_patient_source(self) -> RuleTestCase:
        given = [name for name in ("resources", "example", "bundle") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a case needs exactly one of `resources`, `example` or `bundle`")
        if (self.hook is None) != (self.expect.deadline_card is None):
            raise ValueError("`hook` and `expect.deadline_card` go together")
        return self


class CaseFile(_Strict):
    now: AwareDatetime | None = None
    version: str | None = Field(default=None, description="rule version to test; default: the active one")
    patient_id: str = "example"
    cases: list[RuleTestCase] = Field(min_length=1)


@dataclass
class CaseResult:
    rule_id: str
    version: str
    file: str
    name: str
    passed: bool
    message: str = ""
    expects_fire: bool = False
    hook: str | None = None  # a deadline case's hook
    expects_card: bool | None = None  # a deadline case: whether the hook must card


def _example_bundle(example_id: str) -> Path:
    path = EXAMPLES_DIR / "patients" / f"{example_id}.json"
    if not path.is_file():
        raise ValueError(f"no example patient {example_id!r} (see fhir_examples/examples.yaml)")
    return path


def _patient(case: RuleTestCase, defaults: CaseFile, base: Path) -> tuple[str, set[str], list[dict[str, Any]]]:
    file = _example_bundle(case.example) if case.example is not None else base / case.bundle if case.bundle else None
    if file is not None:
        bundle = read_patient_bundle(json.loads(file.read_text(encoding="utf-8")))
        return bundle.patient_id, bundle.aliases, bundle.resources
    patient_id = case.patient_id or defaults.patient_id
    resources = []
    for resource in case.resources or []:
        # Inline resources may leave out the subject: it is always the case's patient.
        if resource.get("resourceType") != "Patient" and "subject" not in resource:
            resource = {**resource, "subject": {"reference": f"Patient/{patient_id}"}}
        resources.append(resource)
    return patient_id, set(), resources


def _check(case: RuleTestCase, ruleset: RuleSet, rule_id: str, defaults: CaseFile, path: Path) -> CaseResult:
    version = case.version or defaults.version
    rule = ruleset.version(rule_id, version)
    label = str(path)
    if rule is None:
        return CaseResult(rule_id, version or "active", label, case.name, False, f"no version {version!r}")
    now: datetime | None = case.now or defaults.now
    if now is None:
        return CaseResult(rule_id, rule.version, label, case.name, False, "no `now` given for the case or file")
    try:
        patient_id, aliases, resources = _patient(case, defaults, path.parent)
    except (OSError, ValueError, InvalidFhir) as error:
        return CaseResult(rule_id, rule.version, label, case.name, False, f"cannot read the patient: {error}")
    record = build_record(
        patient_id, resources, patient_aliases=aliases, encounter_id=case.encounter, text=ruleset.text_path
    )
    unexpected = [i for i in record.issues if i.location not in case.expect.input_issues]
    if unexpected:
        listing = "; ".join(f"{i.reference} {i.location}: {i.message}" for i in unexpected)
        return CaseResult(rule_id, rule.version, label, case.name, False, f"invalid FHIR in the case: {listing}")
    evaluation = evaluate_record(ruleset, record, now, rules=[rule])
    decision = evaluation.decisions[0]
    failures: list[str] = []
    if decision.fired != case.expect.fires:
        failures.append(f"expected fires={case.expect.fires}, got {decision.fired}")
    if case.hook is not None:
        checked = check_deadline(
            case.hook, evaluation, case.appointments or [], case.dispatched or [], case.tasks or []
        )
        if (checked.late is not None) != case.expect.deadline_card:
            when = f" ({checked.late.event}, due {checked.late.clock.due.isoformat()})" if checked.late else ""
            failures.append(f"expected deadline_card={case.expect.deadline_card}, got {checked.late is not None}{when}")
    for name, expected in case.expect.criteria.items():
        result = decision.criteria.get(name)
        if result is None:
            failures.append(f"criterion {name!r} does not exist")
        elif result.held != expected:
            failures.append(f"criterion {name!r}: expected {expected}, got {result.held}")
    failures += [f"criterion {name!r} {error.problem}: {error.reference}" for name, error in decision.errors]
    evidence = {f.reference for f in decision.evidence}
    failures += [f"{ref} is not in the evidence" for ref in case.expect.evidence if ref not in evidence]
    found = {i.location for i in record.issues}
    failures += [f"no input issue at {loc}" for loc in case.expect.input_issues if loc not in found]
    return CaseResult(
        rule_id,
        rule.version,
        label,
        case.name,
        not failures,
        "; ".join(failures),
        case.expect.fires,
        case.hook,
        case.expect.deadline_card,
    )


def load_case_file(path: Path) -> CaseFile:
    return CaseFile.model_validate(load_yaml(path))


def case_files(ruleset: RuleSet) -> list[tuple[str, Path]]:
    found = []
    for rule_id in ruleset.rules:
        found += [(rule_id, p) for p in sorted((ruleset.root / rule_id / "tests").glob("*.yaml"))]
    return found


def run_rule_tests(ruleset: RuleSet) -> list[CaseResult]:
    """Run every case of every rule; a file that does not parse is one failed result naming the problem."""
    results: list[CaseResult] = []
    for rule_id, path in case_files(ruleset):
        try:
            defaults = load_case_file(path)
        except (ValidationError, ValueError) as error:
            results.append(CaseResult(rule_id, "?", str(path), "(file)", False, f"not a valid test file: {error}"))
            continue
        results += [_check(case, ruleset, rule_id, defaults, path) for case in defaults.cases]
    return results


def lint_rule_tests(results: list[CaseResult], ruleset: RuleSet | None = None) -> list[str]:
    """Every rule needs a positive and a negative case: a rule tested only one way is not tested. With the rule set,
    every draft version needs both too, for itself (`version:`): a draft is on its way to being served."""
    problems = []
    for rule_id in sorted({r.rule_id for r in results}):
        mine = [r for r in results if r.rule_id == rule_id]
        if not any(r.expects_fire for r in mine):
            problems.append(f"rules/{rule_id}/tests: no case where the rule fires")
        if not any(not r.expects_fire for r in mine if r.name != "(file)"):
            problems.append(f"rules/{rule_id}/tests: no negative case (where the rule must not fire)")
    for hook in ("appointment-book", "encounter-discharge", "order-dispatch"):
        mine = [r for r in results if r.hook == hook]
        for wanted, word in ((True, "positive (a card)"), (False, "negative (no card)")):
            found = sum(1 for r in mine if r.expects_card is wanted)
            if found < MIN_DEADLINE_CASES:
                problems.append(f"rules/*/tests: {found} {word} {hook} case(s); at least {MIN_DEADLINE_CASES} needed")
    for draft in ruleset.drafts() if ruleset is not None else []:
        cases = [r for r in results if r.rule_id == draft.id and r.version == draft.version and r.name != "(file)"]
        if not any(r.expects_fire for r in cases):
            problems.append(
                f"rules/{draft.id}/tests: the draft {draft.ref} has no case where it fires (version: {draft.version})"
            )
        if not any(not r.expects_fire for r in cases):
            problems.append(
                f"rules/{draft.id}/tests: the draft {draft.ref} has no negative case (version: {draft.version})"
            )
    return problems
