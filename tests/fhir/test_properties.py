"""Property tests: FHIR-shaped data with hostile values never crashes the engine, and nothing disappears in silence.

Every generated Condition or Observation ends up either counted (a fact) or set aside with a reason; reading,
evaluating and rendering the card never raise, whatever the dates, numbers, strings or shapes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.cdshooks.cards import CardContext, render_card
from service.engine.evaluation import evaluate_record
from service.fhir.record import build_record

NOW = datetime(2026, 11, 20, 9, tzinfo=UTC)
SYSTEMS = ["http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10-cm", "urn:oid:2.16.840.1.113883.6.3", "", None]
CODES = ["254837009", "102568007", "R26.2", "C50.911", "G95.20", "72514-3", "M54.5"]

hostile_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)  # NUL, surrogates
dates = st.one_of(
    st.dates(min_value=datetime(1, 1, 1).date(), max_value=datetime(9999, 12, 31).date()).map(str),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(["9999", "0001", "2026-13", "2026-02-30", "tomorrow", "", "2026-11-20T25:00:00Z"]),
    hostile_text,
    st.integers(),
)
numbers = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400), st.floats(allow_nan=False, allow_infinity=False)
)
coding = st.fixed_dictionaries(
    {"code": st.one_of(st.sampled_from(CODES), hostile_text, st.integers())},
    optional={"system": st.one_of(st.sampled_from(SYSTEMS), hostile_text), "display": hostile_text},
)
concept = st.one_of(
    st.fixed_dictionaries({"coding": st.lists(coding, max_size=3)}, optional={"text": hostile_text}),
    st.fixed_dictionaries({"coding": coding}),  # a single object where R4 wants an array
    hostile_text,
)
status = st.one_of(
    st.sampled_from(["final", "entered-in-error", "cancelled", "preliminary"]), hostile_text, st.integers()
)
clinical = st.fixed_dictionaries({"coding": st.lists(st.fixed_dictionaries({"code": st.one_of(st.sampled_from(
    ["active", "resolved", "remission", "refuted", "entered-in-error"]), hostile_text)}), max_size=2)})  # fmt: skip
subject = st.one_of(
    st.just({"reference": "Patient/p"}), st.just({"reference": "Patient/other"}), st.just({}), hostile_text
)


def resource(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    common = {"resourceType": st.just(kind), "id": st.one_of(st.text(max_size=10), st.integers()), "code": concept}
    if kind == "Condition":
        optional = {"subject": subject, "onsetDateTime": dates, "recordedDate": dates,
                    "clinicalStatus": clinical, "verificationStatus": clinical}  # fmt: skip
    else:
        optional = {"subject": subject, "status": status, "effectiveDateTime": dates, "issued": dates,
                    "valueQuantity": st.fixed_dictionaries({"value": numbers}), "valueInteger": numbers,
                    "valueBoolean": st.one_of(st.booleans(), hostile_text), "valueCodeableConcept": concept,
                    "valueString": hostile_text}  # fmt: skip
    return st.fixed_dictionaries(common, optional=optional)


records = st.lists(st.one_of(resource("Condition"), resource("Observation")), max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(resources=records)
def test_nothing_crashes_and_nothing_disappears_in_silence(ruleset, resources: list[dict[str, Any]]) -> None:
    record = build_record("p", resources)
    assert len(record.facts) + len(record.set_aside) == len(resources)
    card = render_card(evaluate_record(ruleset, record, NOW), CardContext(lambda: "u"))
    if card is not None:
        assert len(card.summary) < 140
        for issue in record.issues:
            assert issue.outcome in ("counted", "set aside")
