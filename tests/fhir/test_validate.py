from service.fhir.validate import validate_resource


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
