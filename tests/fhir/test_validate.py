import json

from service.fhir.validate import validate, validate_resource


def test_valid_condition_has_no_issues() -> None:
    assert validate_resource({"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p"}}) == []


def test_each_problem_is_located_and_never_echoes_the_value() -> None:
    issues = validate_resource(
        {
            "resourceType": "Observation",
            "id": "o",
            "status": "final",
            "code": {"text": "x"},
            "effectiveDateTime": "SECRET-not-a-date",
            "bogus": 1,
        }
    )
    locations = {i.location for i in issues}
    assert "Observation.effectiveDateTime" in locations
    assert "Observation.bogus" in locations
    assert all("SECRET" not in i.message for i in issues)


def test_unknown_or_missing_resource_type() -> None:
    assert validate_resource({"resourceType": "NotAThing"})[0].message.startswith("unknown resource type")
    assert validate_resource({"id": "x"})[0].location == "resourceType"


def test_a_resource_seen_before_is_not_validated_again_and_gets_the_same_verdict(monkeypatch) -> None:
    from service.fhir import validate as module

    calls: list[str] = []
    real = module._validate
    monkeypatch.setattr(module, "_OUTCOMES", module._Outcomes())
    monkeypatch.setattr(module, "_validate", lambda r: calls.append(r.get("id")) or real(r))
    bad = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p"}, "code": {"text": 5}}
    first, second = validate(bad), validate(json.loads(json.dumps(bad)))  # the same JSON, another object
    assert calls == ["c1"]
    assert first.issues == second.issues
    assert first.fatal == second.fatal
    assert first.issues  # the verdict remembered is the full one, problems included
    nan = {**bad, "id": "c2", "onsetAge": {"value": float("nan")}}
    null = {**bad, "id": "c2", "onsetAge": {"value": None}}
    validate(nan), validate(null)
    assert calls == ["c1", "c2", "c2"]  # NaN and null are different resources


def test_a_repaired_resource_is_not_remembered(monkeypatch) -> None:
    from service.fhir import validate as module

    monkeypatch.setattr(module, "_OUTCOMES", module._Outcomes())
    single = {
        "resourceType": "Condition",
        "id": "c3",
        "subject": {"reference": "Patient/p"},
        "code": {"coding": {"system": "http://snomed.info/sct", "code": "26544005"}},
    }
    first, second = validate(single), validate(single)
    assert first.resource is not single  # each call gets its repaired copy
    assert second.resource is not single
    assert first.resource == second.resource
    assert not module._OUTCOMES.known


def test_different_resources_never_share_a_verdict_digest() -> None:
    from service.fhir.validate import _Outcomes

    def condition(value: object) -> dict[str, object]:
        return {"resourceType": "Condition", "id": "c", "note": [{"text": value}], "onsetAge": {"value": 1}}

    values = [
        float("nan"),
        None,
        float("inf"),
        float("-inf"),
        "null",
        "\ud800",  # a lone surrogate (valid JSON text), and its escape spelled out
        "\\ud800",
        "é",
        "\\u00e9",
        2**70,
        str(2**70),
        1,
        1.0,
        True,
    ]
    digests = [_Outcomes.digest(condition(v)) for v in values]
    assert None not in digests
    assert len(set(digests)) == len(values)
    assert [_Outcomes.digest(condition(v)) for v in values] == digests  # the same resource, the same digest
