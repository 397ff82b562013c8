"""Every criterion kind is one object that declares what it reads, and the prefetch plan asks for all of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.cdshooks.cards import CardContext, render_card
from service.config import PROJECT_ROOT
from service.engine import model
from service.engine.criteria import KINDS, Compiling, CriterionNode, compile_criterion
from service.engine.criteria.combine import Combination
from service.engine.evaluation import evaluate_record
from service.engine.loader import load_ruleset
from service.engine.model import Criterion, RuleVersion
from service.engine.prefetchplan import codes_read
from service.engine.ruleset import RuleSet
from service.engine.trace import trace_decisions
from service.fhir.codes import SNOMED
from service.fhir.record import VALIDATED_TYPES, build_record
from tests.helpers import NOW, active_file, active_ref, cond, copy_rules

RULESET = load_ruleset(PROJECT_ROOT / "rules")
READABLE_TYPES = VALIDATED_TYPES | {"Patient"}
# One criterion of each kind, as an author writes it: a kind without a sample here fails the first test.
SAMPLES: dict[str, dict[str, Any]] = {
    "finding": {"finding": {"valueset": "limb-weakness", "within": "P30D", "not_followed_by": "whole-spine-mri"}},
    "measurement": {"measurement": {"valueset": "pain-severity-score", "at_least": 7}},
    "order_or_study": {"order_or_study": {"valueset": "whole-spine-mri", "after_onset_of": "finding"}},
    "fhirpath": {"fhirpath": {"resource_type": "Condition", "expression": "code.exists()"}},
    "age": {"age": {"at_least": 50}},
    "all_of": {"all_of": ["finding", "measurement"]},
    "any_of": {"any_of": ["finding", "measurement"]},
    "none_of": {"none_of": ["age"]},
}


def _rule() -> RuleVersion:
    criteria = {kind: {"description": kind.replace("_", " "), **body} for kind, body in SAMPLES.items()}
    card = {"indicator": "info", "summary": "s", "detail": "d"}
    source = {"label": "x", "url": "https://example.org"}
    return RuleVersion.model_validate(
        {"id": "sample", "version": "1.0.0", "status": "draft", "title": "t", "description": "d", "source": source}
        | {"criteria": criteria, "when": "all_of", "card": card}
    )


def _node(kind: str) -> CriterionNode:
    rule = _rule()
    problems: list[tuple[str, str]] = []
    ctx = Compiling(kind, rule, RULESET.codes.valuesets, lambda where, message: problems.append((where, message)))
    node = compile_criterion(kind, rule.criteria[kind], ctx)
    assert problems == []
    return node


def test_every_kind_of_the_schema_is_one_node_class_with_a_sample_here() -> None:
    assert set(KINDS) == set(model.KINDS) == set(SAMPLES)
    assert all(cls.kind == kind for kind, cls in KINDS.items())
    assert set(model.KINDS) == {k for k in Criterion.model_fields if k != "description"}  # one field per kind


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_each_kind_declares_what_it_reads(kind: str) -> None:
    node = _node(kind)
    assert type(node) is KINDS[kind]
    if isinstance(node, Combination):
        assert node.reads == ()  # its children read the record
        assert set(node.depends_on) == set(node.children)
        return
    assert node.reads, f"{kind} reads nothing: the prefetch plan would not ask the EHR for its data"
    for read in node.reads:
        assert set(read.types) <= READABLE_TYPES
        assert read.valueset is None or read.valueset in RULESET.codes.valuesets


@pytest.mark.parametrize("kind", sorted(k for k, cls in KINDS.items() if not issubclass(cls, Combination)))
def test_the_prefetch_plan_asks_for_everything_a_kind_reads(kind: str) -> None:
    node = _node(kind)
    read = codes_read([node], RULESET.codes.valuesets)
    for declared in node.reads:
        for resource_type in declared.types:
            assert resource_type in read
            if declared.valueset is None:
                assert not read[resource_type].listable  # every resource of the type: never narrowed by code


def test_a_finding_that_waits_for_a_study_has_the_studies_fetched() -> None:
    """The studies that would have looked at a sign are read too: a plan built from the finding alone (no
    order_or_study criterion anywhere) asks the EHR for whole-spine MRI orders and reports."""
    read = codes_read([_node("finding")], RULESET.codes.valuesets)
    mri = codes_read([_node("order_or_study")], RULESET.codes.valuesets)
    for resource_type in ("ServiceRequest", "ImagingStudy", "DiagnosticReport"):
        assert read[resource_type].codes == mri[resource_type].codes != frozenset()


def test_a_kind_reports_its_own_load_problems_at_its_field() -> None:
    rule = _rule()
    broken = rule.criteria["finding"].model_copy(
        update={"finding": model.Finding(valueset="nope", text_matches="(", within="$missing")}
    )
    problems: list[tuple[str, str]] = []
    ctx = Compiling("finding", rule, RULESET.codes.valuesets, lambda where, message: problems.append((where, message)))
    compile_criterion("finding", broken, ctx)
    assert [where for where, _ in problems] == [
        "criteria.finding.finding.valueset",
        "criteria.finding.finding.within",
        "criteria.finding.finding.text_matches",
    ]


def test_dependencies_come_from_the_nodes() -> None:
    assert _node("order_or_study").depends_on == ("finding",)
    assert _node("finding").depends_on == ()


# A FHIRPath error at run time is never a silently false criterion -----------------------------------------------

FAILING = "Observation.component.valueQuantity.value > 5"  # type-checks at load; fhirpathpy fails on 2 components


def _ruleset_with_failing_fhirpath(tmp_path: Path) -> RuleSet:
    rules = copy_rules(tmp_path)
    path = rules / active_file("mscc-suspected")
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "  mscc_presentation:\n",
        "  odd_component:\n    description: a component over 5\n"
        f"    fhirpath: {{resource_type: Observation, expression: '{FAILING}'}}\n  mscc_presentation:\n",
        1,
    ).replace("radicular_pain_unimaged, nonspecific", "radicular_pain_unimaged, odd_component, nonspecific", 1)
    path.write_text(text, encoding="utf-8")
    return load_ruleset(rules, strict=False)  # an edited released version: the lock is not the point here


def _two_components() -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": "bp", "status": "final", "subject": {"reference": "Patient/p"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]}, "effectiveDateTime": "2026-11-19",
        "component": [
            {"code": {"text": "systolic"}, "valueQuantity": {"value": 120}},
            {"code": {"text": "diastolic"}, "valueQuantity": {"value": 80}},
        ],
    }  # fmt: skip


def test_a_fhirpath_error_is_named_in_the_trace_and_on_a_card_of_its_own(tmp_path: Path) -> None:
    ruleset = _ruleset_with_failing_fhirpath(tmp_path)
    cancer = cond("ca", SNOMED, "254837009", date="2024-01-01")
    evaluation = evaluate_record(ruleset, build_record("p", [cancer, _two_components()]), NOW)
    decision = next(d for d in evaluation.decisions if d.rule.id == "mscc-suspected")
    assert not decision.fired
    [(criterion, error)] = decision.errors
    assert criterion == "odd_component"
    assert error.reference == "Observation/bp"
    assert error.problem == "could not be evaluated: FHIRPath failed on it (TypeError)"
    [traced] = [c for r in trace_decisions([decision]) for c in r.criteria if c.name == "odd_component"]
    assert [(n.reference, n.reason) for n in traced.notEvaluated] == [("Observation/bp", error.problem)]
    assert [(s.reference, s.problem) for s in evaluation.unreadable] == [("Observation/bp", error.problem)]
    card = render_card(evaluation, CardContext(lambda: "u"))
    assert card is not None  # the check is incomplete: said, not silently "no card"
    assert "could not be evaluated" in (card.detail or "")


def test_a_fhirpath_error_fails_the_rule_test_and_is_counted(tmp_path: Path) -> None:
    from authoring.ruletests import run_rule_tests
    from service.metrics import Metrics

    ruleset = _ruleset_with_failing_fhirpath(tmp_path)
    case = tmp_path / "rules" / "mscc-suspected" / "tests" / "fhirpath-error.yaml"
    resources = json.dumps([cond("ca", SNOMED, "254837009", date="2024-01-01"), _two_components()])
    case.write_text(
        f"now: '2026-11-20T09:00:00Z'\ncases:\n  - name: a resource FHIRPath fails on\n    patient_id: p\n"
        f"    resources: {resources}\n    expect: {{fires: false}}\n",
        encoding="utf-8",
    )
    [result] = [r for r in run_rule_tests(ruleset) if r.name == "a resource FHIRPath fails on"]
    assert not result.passed
    assert "criterion 'odd_component' could not be evaluated" in result.message
    metrics = Metrics()
    evaluation = evaluate_record(ruleset, build_record("p", json.loads(resources)), NOW)
    assert metrics.count_criterion_errors(evaluation.decisions) == 1
    assert (
        f'mscc_criterion_errors_total{{criterion="odd_component",rule="{active_ref("mscc-suspected")}"}} 1.0'.encode()
        in metrics.render()
    )
