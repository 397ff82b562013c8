"""One hook call end to end (`cdshooks/call.py`): the parts not covered through the API."""


def test_a_resource_sent_under_two_keys_is_read_once_and_different_ones_are_kept() -> None:
    from service.cdshooks.call import _distinct

    templates = {"a": "Observation?patient=x&category:not=laboratory", "b": "Observation?patient=x", "c": "Condition"}
    first = {"resourceType": "Observation", "id": "o1", "status": "final"}
    changed = {"resourceType": "Observation", "id": "o1", "status": "amended"}
    condition = {"resourceType": "Condition", "id": "c1"}
    odd = {"resourceType": ["Observation"], "id": "o1"}
    given = [first, dict(first), changed, condition, dict(condition), odd]
    assert _distinct(given, templates) == [first, changed, condition, condition, odd]  # Condition: one key only
    assert _distinct(given, {"a": "Observation?patient=x"}) is given


def test_only_resources_a_rule_can_read_are_kept_from_the_prefetch(ruleset) -> None:
    """The call's early filter reads as build_record's filter does: validated types whose codes a rule reads."""
    from service.cdshooks.call import readable_by_rules

    keep = readable_by_rules(ruleset)
    weakness = {
        "resourceType": "Observation",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "26544005"}]},
    }
    glucose = {"resourceType": "Observation", "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}}
    medication = {"resourceType": "MedicationRequest", "code": weakness["code"]}
    assert keep(weakness)
    assert not keep(glucose)
    assert not keep(medication)  # a type build_record never reads
