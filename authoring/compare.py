"""Trial before activation: what one rule version does against another, on every patient there is.

The patients are the examples, the real published records (shared/realdata), and *boundary variants* of the
examples: for each measurement threshold and each time window of the versions compared, copies of every example
patient that has such a value or finding, with the value just under, at and just over the threshold and the date
just inside and just outside the window. A change of threshold or window therefore always shows its effect, even
when no example patient sits near it.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from authoring.validation import _DATE_FIELDS, EXPECTED, ValidationCase, example_cases, real_record_cases
from service.engine.criteria import CriterionNode
from service.engine.evaluation import evaluate_record
from service.engine.model import Criterion
from service.engine.ruleset import CompiledRule, RuleSet
from service.engine.yamlfile import load_yaml
from service.fhir.record import build_record, raw_keys


def patients(include_real: bool = True) -> list[ValidationCase]:
    """The example patients and, when shared/realdata is beside the project, the real records."""
    found = list(example_cases())
    if include_real and EXPECTED.is_file():
        with contextlib.suppress(OSError):  # no shared/realdata here: the examples alone
            found += list(real_record_cases(load_yaml(EXPECTED)))
    return found


def _matching(ruleset: RuleSet, resource: dict[str, Any], valueset: str) -> bool:
    return any(valueset in ruleset.codes.lookup(key) for key in raw_keys(resource))


def _with_value(resource: dict[str, Any], value: float) -> dict[str, Any]:
    changed = copy.deepcopy(resource)
    if isinstance(changed.get("valueQuantity"), dict):
        changed["valueQuantity"]["value"] = value
    else:
        changed["valueInteger"] = int(value)
    return changed


def _dated(resource: dict[str, Any], when: datetime) -> dict[str, Any]:
    changed = copy.deepcopy(resource)
    for name in _DATE_FIELDS:
        if name in changed:
            changed[name] = when.isoformat(timespec="seconds")
    return changed


def _variant(case: ValidationCase, index: int, resource: dict[str, Any], label: str) -> ValidationCase:
    resources = [*case.resources[:index], resource, *case.resources[index + 1 :]]
    return replace(case, source="boundary", name=f"{case.name} ~ {label}", resources=resources)


def _threshold_values(threshold: float) -> list[float]:
    step = 1.0 if float(threshold).is_integer() else max(abs(threshold) * 0.05, 0.01)
    return [threshold - step, threshold, threshold + step]


def _edges(
    name: str, criterion: CriterionNode, case: ValidationCase, resource: dict[str, Any]
) -> list[tuple[str, Any]]:
    """(label, changed resource) at each threshold and window edge of one criterion."""
    edges: list[tuple[str, Any]] = []
    measurement = criterion.spec.measurement
    if measurement is not None and ("valueQuantity" in resource or "valueInteger" in resource):
        thresholds = (measurement.at_least, measurement.above, measurement.at_most, measurement.below)
        for threshold in (t for t in thresholds if t is not None):
            edges += [(f"{name} value {v:g}", _with_value(resource, v)) for v in _threshold_values(threshold)]
    if isinstance(criterion.window, timedelta):
        for days in (1, -1):
            label = f"{name} dated {criterion.window.days - days} days before now"
            edges.append((label, _dated(resource, case.now - criterion.window + timedelta(days=days))))
    return edges


def _codes_of(ruleset: RuleSet, valueset: str) -> list[tuple[str, str]]:
    """Codes of a value set to build a patient with (its own codes and ICD prefixes, then those it includes)."""
    definition = ruleset.codes.valuesets[valueset]
    by_url = {vs.url: vs.id for vs in ruleset.codes.valuesets.values()}
    found = sorted(definition.codes) + sorted(definition.prefixes)
    for url in definition.includes:
        found += _codes_of(ruleset, by_url[url])
    return found


def _code_for(ruleset: RuleSet, valueset: str, forbidden: frozenset[str]) -> tuple[str, str] | None:
    """A code of `valueset` that no `forbidden` value set holds (so it shows one criterion, not its siblings)."""
    return next((k for k in _codes_of(ruleset, valueset) if not ruleset.codes.lookup(k) & forbidden), None)


def _path_to(rule: CompiledRule, target: str, node: str) -> bool:
    return node == target or any(_path_to(rule, target, child) for child in rule.criteria[node].spec.children)


def _leaves(rule: CompiledRule, node: str, target: str) -> list[str]:
    """The data criteria a patient needs for `node` to hold through `target` (one branch of each any_of)."""
    spec = rule.criteria[node].spec
    if spec.all_of:
        return [leaf for child in spec.all_of for leaf in _leaves(rule, child, target)]
    if spec.any_of:
        chosen = next((c for c in spec.any_of if _path_to(rule, target, c)), spec.any_of[0])
        return _leaves(rule, chosen, target)
    return [] if spec.none_of else [node]


def _siblings(rule: CompiledRule, target: str) -> frozenset[str]:
    """Value sets read by the other branches of the any_of groups above `target`: the patient must not hold them."""
    found: set[str] = set()
    for criterion in rule.criteria.values():
        if criterion.spec.any_of and any(_path_to(rule, target, c) for c in criterion.spec.any_of):
            for other in criterion.spec.any_of:
                if not _path_to(rule, target, other):
                    found |= _valuesets_under(rule, other)
    return frozenset(found)


def _needs_words(spec: Criterion) -> bool:
    """A finding that must also be said in words (a text pattern, a mention): codes alone never make it hold."""
    return spec.finding is not None and bool(spec.finding.text_matches or spec.finding.text_mentions)


def _valuesets_under(rule: CompiledRule, node: str) -> set[str]:
    """Value sets whose codes alone would make `node` hold (a finding that also needs a text pattern does not:
    a generated patient's text never matches it)."""
    spec = rule.criteria[node].spec
    body = spec.finding or spec.measurement
    own = {body.valueset} if body and not _needs_words(spec) else set()
    return own | {v for c in spec.children for v in _valuesets_under(rule, c)}


def _resource(ruleset: RuleSet, rule: CompiledRule, leaf: str, forbidden: frozenset[str], n: int, now: datetime) -> Any:
    spec = rule.criteria[leaf].spec
    body = spec.finding or spec.measurement
    if body is None:
        return None
    key = _code_for(ruleset, body.valueset, forbidden)
    if key is None:
        return None
    coding = {"system": key[0], "code": key[1], "display": f"{leaf.replace('_', ' ')}"}
    when = (now - timedelta(days=1)).isoformat(timespec="seconds")
    subject = {"reference": "Patient/boundary"}
    if spec.measurement is not None:
        m = spec.measurement
        value = next(t for t in (m.at_least, m.above, m.at_most, m.below) if t is not None)
        value += 1 if m.above is not None else -1 if m.below is not None else 0
        quantity = {
            "value": value,
            "unit": m.unit or "{score}",
            "system": "http://unitsofmeasure.org",
            "code": m.unit or "{score}",
        }
        return {"resourceType": "Observation", "id": f"b{n}", "status": "final", "subject": subject,
                "code": {"coding": [coding]}, "effectiveDateTime": when, "valueQuantity": quantity}  # fmt: skip
    return {"resourceType": "Condition", "id": f"b{n}", "subject": subject, "code": {"coding": [coding]},
            "recordedDate": when, "clinicalStatus": {"coding": [{"code": "active"}]}}  # fmt: skip


def rule_patients(ruleset: RuleSet, rule: CompiledRule, now: datetime) -> list[ValidationCase]:
    """Minimal patients built from the rule's own value sets: for each threshold or windowed criterion, a patient
    who meets the rule through that criterion alone, then its edges (a score of 6, 7 and 8 against "7 or more")."""
    made: list[ValidationCase] = []
    for target, criterion in rule.criteria.items():
        if _needs_words(criterion.spec):
            continue  # a text pattern cannot be written from a value set
        if criterion.spec.measurement is None and not isinstance(criterion.window, timedelta):
            continue
        forbidden = _siblings(rule, target)
        leaves = _leaves(rule, rule.spec.when, target)
        if target not in leaves:
            continue
        resources = [_resource(ruleset, rule, leaf, forbidden, n, now) for n, leaf in enumerate(leaves)]
        if any(r is None for r in resources):
            continue
        base = ValidationCase("boundary", f"{rule.id}: {target} alone", "boundary", resources, now, "none", frozenset())
        at = leaves.index(target)
        for label, resource in _edges(target, criterion, base, resources[at]):
            made.append(_variant(base, at, resource, label))
    return made


def boundary_patients(ruleset: RuleSet, rules: list[CompiledRule], base: list[ValidationCase]) -> list[ValidationCase]:
    """Variants of the base patients at each threshold and window edge of these rule versions (one resource per
    patient and criterion is enough to show an edge)."""
    variants: dict[str, ValidationCase] = {}
    for rule in rules:
        for name, criterion in rule.criteria.items():
            spec = criterion.spec.measurement or criterion.spec.finding
            if spec is None:
                continue
            for case in base:
                hit = next((i for i, r in enumerate(case.resources) if _matching(ruleset, r, spec.valueset)), None)
                if hit is None:
                    continue
                for label, resource in _edges(name, criterion, case, case.resources[hit]):
                    variants.setdefault(f"{case.name} ~ {label}", _variant(case, hit, resource, label))
    now = base[0].now if base else datetime.now().astimezone()
    for rule in rules:
        for case in rule_patients(ruleset, rule, now):
            variants.setdefault(case.name, case)
    return list(variants.values())


def boundary_report(ruleset: RuleSet) -> list[str]:
    """For `rules test --boundaries`: each active and draft version on the patients at its own edges."""
    examples = [c for c in patients(include_real=False) if c.source == "example"]
    lines = []
    for version in [*ruleset.active(), *ruleset.drafts()]:
        cases = boundary_patients(ruleset, [version], examples)
        lines.append(f"BOUNDARIES {version.ref} ({len(cases)} patients at its thresholds and windows)")
        for case in cases:
            record = build_record(case.patient_id, case.resources, patient_aliases=case.aliases, text=ruleset.text_path)
            decision = evaluate_record(ruleset, record, case.now, rules=[version]).decisions[0]
            lines.append(f"  {'fires' if decision.fired else 'silent':6} {case.name}")
    return lines


@dataclass(frozen=True)
class ClinicianView:
    """What a clinician would see: the card's indicator, the leading rule and the orders it offers."""

    indicator: str
    lead: str
    offers: tuple[str, ...]

    def __str__(self) -> str:
        if self.indicator == "none":
            return "no card"
        return f"{self.indicator}: {self.lead}" + (f", offers {', '.join(self.offers)}" if self.offers else "")


@dataclass(frozen=True)
class PatientChange:
    patient: ValidationCase
    before: ClinicianView
    after: ClinicianView

    @property
    def kind(self) -> str:
        if self.before == self.after:
            return "same"
        if self.before.indicator == "none":
            return "gains a card"
        if self.after.indicator == "none":
            return "loses its card"
        return "changes"


def answer(
    ruleset: RuleSet, rules: list[CompiledRule], case: ValidationCase, now: datetime | None = None
) -> ClinicianView:
    record = build_record(case.patient_id, case.resources, patient_aliases=case.aliases, text=ruleset.text_path)
    evaluation = evaluate_record(ruleset, record, now or case.now, hook="patient-view", rules=rules)
    lead = evaluation.lead
    if lead is None:
        return ClinicianView("none", "", ())
    return ClinicianView(
        lead.rule.spec.card.indicator, lead.rule.id, tuple(evaluation.offered_orders)
    )  # not the version


def with_version(ruleset: RuleSet, version: CompiledRule) -> list[CompiledRule]:
    """The active rules, with `version` in place of its rule's active version (or added, for a new rule)."""
    others = [r for r in ruleset.active() if r.id != version.id]
    chosen = [*others, version]
    return sorted(chosen, key=lambda r: ruleset.active().index(r) if r in ruleset.active() else len(chosen))


def resolve(ruleset: RuleSet, ref: str) -> CompiledRule:
    rule_id, _, version = ref.partition("@")
    found = ruleset.version(rule_id, version or None)
    if found is None:
        raise ValueError(f"no rule version {ref!r} (see `python -m service rules check` or GET /rules)")
    return found


def compare(ruleset: RuleSet, a: str | None, b: str, include_real: bool = True) -> list[PatientChange]:
    """Every patient's answer with version `a` (default: the active rules) and with version `b` in its place."""
    version_b = resolve(ruleset, b)
    version_a = resolve(ruleset, a) if a else ruleset.version(version_b.id)
    rules_a = with_version(ruleset, version_a) if version_a is not None else ruleset.active()
    rules_b = with_version(ruleset, version_b)
    base = patients(include_real)
    compared = [v for v in (version_a, version_b) if v is not None]
    everyone = base + boundary_patients(ruleset, compared, [c for c in base if c.source == "example"])
    return [PatientChange(c, answer(ruleset, rules_a, c), answer(ruleset, rules_b, c)) for c in everyone]


def print_comparison(changes: list[PatientChange], a: str, b: str) -> None:
    changed = [c for c in changes if c.kind != "same"]
    for change in changed:
        print(f"{change.kind.upper():14} {change.patient.name}\n    {a}: {change.before}\n    {b}: {change.after}")
    by_source: dict[str, int] = {}
    for change in changes:
        by_source[change.patient.source] = by_source.get(change.patient.source, 0) + 1
    counted = ", ".join(f"{n} {source}" for source, n in sorted(by_source.items()))
    print(f"\n{len(changed)} of {len(changes)} patients change between {a} and {b} ({counted})")
