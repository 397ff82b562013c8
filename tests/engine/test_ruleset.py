from service.fhir.codes import SNOMED


def test_only_resources_a_rule_can_read_are_relevant(ruleset) -> None:
    def obs(code: dict, **extra: object) -> dict:
        return {"resourceType": "Observation", "code": code, **extra}

    glucose = obs({"coding": [{"system": "http://loinc.org", "code": "2345-7"}]})
    weakness = obs({"coding": [{"system": SNOMED, "code": "26544005"}]})
    symptom = obs(
        {"coding": [{"system": "http://loinc.org", "code": "75325-1"}]},
        valueCodeableConcept={"coding": [{"system": SNOMED, "code": "279039007"}]},
    )
    uncoded = obs({"text": "back pain"})
    assert not ruleset.relevant(glucose)
    assert ruleset.relevant(weakness)
    assert ruleset.relevant(symptom)
    assert not ruleset.relevant(uncoded)
    assert ruleset.fhirpath_types == frozenset()
