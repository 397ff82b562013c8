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
    uncoded = obs({"text": "back pain"})  # no coding: the words are read (medspaCy), and they name spinal pain
    unrelated = obs({"text": "hair colour"})
    local_lab = obs({"coding": [{"system": "http://loinc.org", "code": "2345-7"}], "text": "cancer antigen"})
    assert not ruleset.relevant(glucose)
    assert ruleset.relevant(weakness)
    assert ruleset.relevant(symptom)
    assert ruleset.relevant(uncoded)
    assert not ruleset.relevant(unrelated)
    assert not ruleset.relevant(local_lab)  # a LOINC question's text names the question, not a finding
    assert ruleset.relevant({**weakness, "resourceType": ["Observation"]})  # no TypeError: the codes still speak
    assert ruleset.types_read_whole == frozenset()  # no FHIRPath or age criterion in the shipped rules


def _real_resources() -> list[dict]:
    import gzip
    import json

    from tests.helpers import REALDATA

    found = []
    for path in sorted((REALDATA / "smart-generated-sample-data-r4").glob("*.json.gz")):
        found += [e["resource"] for e in json.loads(gzip.decompress(path.read_bytes())).get("entry", [])]
    return found


def test_the_remembered_relevance_answers_as_the_full_reading_does(ruleset) -> None:
    """The fast check remembers each (system, code) as sent: it must agree with reading the resource the long way,
    on real records (read twice, so the second pass answers from memory) and on odd shapes."""

    odd = [
        {"resourceType": "Observation", "code": {"coding": {"system": SNOMED, "code": "26544005"}}},  # not a list
        {"resourceType": "Observation", "code": {"coding": [{"system": SNOMED, "code": 26544005}]}},  # number
        {"resourceType": "Observation", "code": {"coding": [{"code": "26544005"}]}},  # no system: reported
        {"resourceType": "Observation", "code": {"coding": [{"system": ["x"], "code": "1"}]}},  # unhashable
        {"resourceType": "Observation", "code": "26544005"},
        {"resourceType": "ImagingStudy", "procedureCode": [{"coding": [{"system": SNOMED, "code": "241645006"}]}]},
        {"resourceType": "Observation", "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "279039007"}]}},
        {
            "resourceType": "Condition",
            "code": {"coding": [{"system": "https://snomed.info/sct/", "code": "26544005 "}]},
        },
    ]
    real = _real_resources()
    for resource in [*odd, *real, *odd, *real]:
        assert ruleset.relevant(resource) == ruleset._relevant_slowly(resource), resource.get("code")
    assert any(ruleset.relevant(r) for r in odd)
