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
