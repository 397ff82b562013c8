"""FHIRPath in rule files is parsed strictly and type-checked against the resource type at load."""

from __future__ import annotations

import pytest

from service.engine.fhirpath import FhirPathError, check_expression


@pytest.mark.parametrize(
    ("expression", "resource_type"),
    [
        ("code.coding.where(system = 'http://snomed.info/sct' and code = '1').exists()", "Condition"),
        ("Condition.code.coding.code = '1'", "Condition"),
        ("value.exists()", "Observation"),  # a choice element
        ("valueQuantity.value > 7", "Observation"),
        ("component.where(code.coding.code = 'x').valueQuantity.value >= 5", "Observation"),
        ("subject.reference.startsWith('Patient/')", "Condition"),
        ("(code.coding.code = '1') or (code.text.contains('x'))", "Condition"),
        ("extension.where(url = 'x').value.exists()", "Condition"),
    ],
)
def test_working_expressions_pass(expression: str, resource_type: str) -> None:
    check_expression(expression, resource_type)


@pytest.mark.parametrize(
    ("expression", "resource_type", "said"),
    [
        ("code.coding.where(code = '1'", "Condition", "missing ')'"),
        ("code.coding.exists() )", "Condition", "unexpected ')'"),
        ("code.codings.exists()", "Condition", "CodeableConcept has no element 'codings'"),
        ("component.where(code.coding.kode = 'x').exists()", "Observation", "Coding has no element 'kode'"),
        ("code.coding.code.foo", "Condition", "a primitive value has no elements"),
        ("Condition.code.coding.code.frobnicate()", "Condition", "unknown function frobnicate()"),
        ("exists(1, 2)", "Condition", "takes 0 or 1 argument(s), not 2"),
        ("code.exists()", "Conditon", "unknown resource type 'Conditon'"),
    ],
)
def test_broken_expressions_are_refused_with_the_reason(expression: str, resource_type: str, said: str) -> None:
    with pytest.raises(FhirPathError, match=said.replace("(", r"\(").replace(")", r"\)")):
        check_expression(expression, resource_type)
