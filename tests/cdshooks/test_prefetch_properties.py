"""Property test: whatever shape an EHR gives its prefetch Bundles (entries, search, fullUrl, resource), a hook call
answers with a CDS Hooks status, never a 500, and the warning signs it was sent in good form still give their card."""

from __future__ import annotations

import copy
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import hook_request

URL = "/cds-services/mscc-patient-view"
BASE = hook_request("01-mscc-breast-cancer-leg-weakness")
ANSWERS = {200, 400, 412, 422}

json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)
odd_entry = st.one_of(
    json_value,
    st.fixed_dictionaries(
        {},
        optional={
            "resource": st.one_of(
                json_value,
                st.just({"resourceType": "Patient", "id": "p01"}),
                st.fixed_dictionaries(
                    {"resourceType": json_value}, optional={"code": json_value, "subject": json_value}
                ),
            ),
            "search": st.one_of(json_value, st.just({"mode": "outcome"}), st.just({"mode": "include"})),
            "fullUrl": json_value,
        },
    ),
)
bundle_field = st.sampled_from(["entry", "total", "type", "link"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.sampled_from(["conditions", "observations"]),
    extra=st.lists(odd_entry, max_size=4),
    field=bundle_field,
    replaced=st.one_of(st.none(), json_value),
)
def test_odd_bundle_shapes_never_give_a_500(
    client: TestClient, key: str, extra: list[Any], field: str, replaced: Any
) -> None:
    body = copy.deepcopy(BASE)
    bundle = body["prefetch"][key]
    bundle["entry"] = [*bundle["entry"], *extra]  # the good entries stay: their signs must still count
    answer = client.post(URL, json=body)
    assert answer.status_code == 200, answer.text
    assert [c["indicator"] for c in answer.json()["cards"]] == ["critical"]
    bundle[field] = replaced  # now the Bundle itself is odd: a CDS Hooks answer all the same
    answer = client.post(URL, json=body)
    assert answer.status_code in ANSWERS, answer.text


ORDER_SIGN = hook_request("14-order-sign-lumbar-xray-in-myeloma")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.lists(odd_entry, max_size=4), field=bundle_field, replaced=st.one_of(st.none(), json_value))
def test_odd_draft_order_bundles_never_give_a_500(
    client: TestClient, extra: list[Any], field: str, replaced: Any
) -> None:
    """The same for order-sign's `draftOrders`: the draft that matches still gets its card."""
    body = copy.deepcopy(ORDER_SIGN)
    drafts = body["context"]["draftOrders"]
    drafts["entry"] = [*drafts["entry"], *extra]
    answer = client.post("/cds-services/mscc-order-sign", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["cards"], "the lumbar X-ray draft in myeloma no longer gives its card"
    drafts[field] = replaced
    answer = client.post("/cds-services/mscc-order-sign", json=body)
    assert answer.status_code in ANSWERS, answer.text


resource_field = st.sampled_from(
    ["resourceType", "id", "code", "subject", "status", "clinicalStatus", "verificationStatus", "category",
     "onsetDateTime", "recordedDate", "effectiveDateTime", "issued", "valueQuantity", "valueCodeableConcept",
     "valueInteger", "component", "meta", "extension", "abatementDateTime", "effectivePeriod"]
)  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.sampled_from(["conditions", "observations"]), index=st.integers(0, 5), field=resource_field, value=json_value
)
def test_a_resource_field_of_any_json_type_never_gives_a_500(
    client: TestClient, key: str, index: int, field: str, value: Any
) -> None:
    body = copy.deepcopy(BASE)
    entries = body["prefetch"][key]["entry"]
    entries[index % len(entries)]["resource"][field] = value
    answer = client.post(URL, json=body)
    assert answer.status_code in ANSWERS, answer.text
