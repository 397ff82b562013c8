"""Normalise a patient's FHIR resources into coded facts the rule engine can read without knowing FHIR.

This is where FHIR semantics live: which statuses mean "ignore", which Observation values mean a
finding is absent, which dates count, and which resources belong to another patient. The engine
only sees `Fact`s and the reasons other resources were set aside.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from service.fhir.codes import LOINC, PROFILE, READ_IN_FULL, SNOMED, TEXT, coding_key, normalise_code
from service.fhir.dates import FhirTime, latest_of, parse_fhir_time
from service.fhir.onset import condition_time
from service.fhir.textread import TextReader
from service.fhir.validate import VALIDATED_TYPES, InputIssue, Validated, reference_of, validate

Presence = Literal["present", "absent", "unknown"]
_BOOLEAN = TypeAdapter(bool)
Key = tuple[str, str]
# Why a resource was set aside, as a small fixed vocabulary (a metrics label): never ids or values.
SetAsideCategory = Literal[
    "invalid", "no-subject", "other-patient", "entered-in-error", "refuted", "cancelled", "out-of-range"
]

# Scores with a fixed scale, by Observation.code: a value outside it is a data error, never "7 or more".
BOUNDED_SCORES: dict[Key, tuple[float, float]] = {
    (LOINC, "72514-3"): (0, 10),  # Pain severity - 0-10 verbal numeric rating [Score] - Reported
    (LOINC, "38208-5"): (0, 10),  # Pain severity - Reported (the 0-10 scale in practice)
    (LOINC, "38221-8"): (0, 10),  # Pain severity Wong-Baker FACES pain rating scale (0, 2, ... 10)
}

# Observation.code values that ask "which symptom?": the finding is then in valueCodeableConcept.
SYMPTOM_QUESTIONS = frozenset({(LOINC, "75325-1")})
# Coded answers to "is the finding there?" (SNOMED CT qualifier values and LOINC answer codes).
PRESENT_ANSWERS = frozenset(
    {
        (SNOMED, "52101004"),  # Present
        (SNOMED, "373066001"),  # Yes
        (SNOMED, "10828004"),  # Positive
        (SNOMED, "260373001"),  # Detected
        (LOINC, "LA33-6"),  # Yes
        (LOINC, "LA6576-8"),  # Positive
        (LOINC, "LA11882-0"),  # Detected
    }
)
ABSENT_ANSWERS = frozenset(
    {
        (SNOMED, "2667000"),  # Absent
        (SNOMED, "373067005"),  # No
        (SNOMED, "260385009"),  # Negative
        (SNOMED, "260415000"),  # Not detected
        (LOINC, "LA32-8"),  # No
        (LOINC, "LA6577-6"),  # Negative
        (LOINC, "LA11883-8"),  # Not detected
    }
)
# Observation.interpretation codes (v3 ObservationInterpretation) that say the finding was not found.
_ABSENT_INTERPRETATIONS = frozenset({"NEG", "ND"})
UNCLEAR_ANSWER = "answer not read with confidence"  # an answer in words that says neither yes nor no
_LAB_CATEGORIES = frozenset({"laboratory", "vital-signs"})  # measurements: never a finding named in words

_IGNORED_STATUS: dict[str, frozenset[str]] = {
    "Observation": frozenset({"entered-in-error", "cancelled"}),
    "ServiceRequest": frozenset({"entered-in-error", "revoked"}),
    "ImagingStudy": frozenset({"entered-in-error", "cancelled"}),
    "DiagnosticReport": frozenset({"entered-in-error", "cancelled"}),
}
_IGNORED_VERIFICATION = frozenset({"entered-in-error", "refuted"})
_NOT_CURRENT_CLINICAL = frozenset({"inactive", "remission", "resolved"})


@dataclass(frozen=True, slots=True)
class Fact:
    """One clinical statement about the patient: a finding, a measurement, an order or a study."""

    reference: str
    resource_type: str
    keys: tuple[tuple[str, str], ...]
    label: str
    text: str
    presence: Presence
    time: FhirTime | None
    status: str | None
    value: float | None = None
    unit: str | None = None
    systemless: tuple[str, ...] = ()  # codes of codings with no system: never matched, but reported
    problems: tuple[str, ...] = ()  # input problems in fields the rules could do without (the fact still counts)
    recorded: FhirTime | None = None  # a Condition's recordedDate, when its onset dates it
    at_encounter: bool = False  # a Condition of the hook's encounter: current even when undated
    from_text: str = ""  # the words the finding was recognised from, when no code said it
    part: str = ""  # a panel's component ("component 2: Paresis of left lower limb"), else ""

    @property
    def key(self) -> tuple[str, str, bool]:
        """One fact per resource, per component of a panel, and per reading (its codes, its words)."""
        return self.reference, self.part, bool(self.from_text)

    @property
    def date_text(self) -> str:
        return self.time.text if self.time else "undated"


@dataclass(frozen=True, slots=True)
class SetAside:
    """A resource the engine did not use, and why (shown in traces, never used as evidence).

    `unreadable` marks a data problem (invalid, no subject, a score off its scale), as opposed to a clinical
    statement the engine honours (entered-in-error, refuted, another patient's): an unreadable warning sign
    must reach the clinician. `label` and `keys` say what the resource appears to be about.
    """

    reference: str
    reason: str
    category: SetAsideCategory = "invalid"
    unreadable: bool = False
    label: str = ""
    keys: tuple[Key, ...] = ()
    systemless: tuple[str, ...] = ()
    date_text: str = "undated"


@dataclass
class PatientRecord:
    """Everything the engine may read about one patient."""

    patient_id: str
    facts: list[Fact] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    set_aside: list[SetAside] = field(default_factory=list)
    issues: list[InputIssue] = field(default_factory=list)
    birth: Fact | None = None  # the Patient's birthDate, when the record holds the Patient (age criteria)


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    codings = concept.get("coding")
    if isinstance(codings, dict):  # a single Coding where R4 wants an array (validation reports it)
        codings = [codings]
    return [c for c in codings or [] if isinstance(c, dict)] if isinstance(codings, list) else []


def _code_text(coding: dict[str, Any]) -> str | None:
    code = coding.get("code")
    return code if isinstance(code, str) and code.strip() else None


def coding_keys(concept: Any) -> tuple[Key, ...]:
    """The (system, code) keys of a CodeableConcept's codings that can match a value set."""
    keys = (coding_key(_str(c.get("system")), _code_text(c)) for c in _codings(concept))
    return tuple(k for k in keys if k is not None)


def systemless_codes(concept: Any) -> tuple[str, ...]:
    """Codes of codings that name no system: they never match (a code means nothing without its system)."""
    return tuple(
        normalise_code(None, code)
        for c in _codings(concept)
        if not _str(c.get("system")) and (code := _code_text(c)) is not None
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


MAX_TEXT = 500  # a display is a label: a longer one is cut, so a 4 MB display never travels into cards or traces


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _texts(*concepts: Any) -> list[str]:
    texts: list[str] = []
    for concept in concepts:
        if isinstance(concept, dict):
            if concept.get("text"):
                texts.append(_short(concept["text"]))
            texts.extend(_short(c["display"]) for c in _codings(concept) if c.get("display"))
    return texts


def _status_code(concept: Any) -> str | None:
    for coding in _codings(concept):
        if code := _code_text(coding):
            return code
    return None


def _period_times(period: Any) -> list[FhirTime | None]:
    if not isinstance(period, dict):
        return []
    return [parse_fhir_time(period.get("end")), parse_fhir_time(period.get("start"))]


def subject_reference(resource: dict[str, Any]) -> str | None:
    subject = resource.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    return reference if isinstance(reference, str) and reference.strip() else None


def names_patient(resource: dict[str, Any], patient_refs: frozenset[str]) -> bool:
    """Does the resource's subject name the patient (relative, absolute, versioned or Bundle fullUrl reference)?"""
    reference = subject_reference(resource)
    if reference is None:
        return False
    if reference in patient_refs:
        return True
    # Absolute and versioned references: .../Patient/123/_history/2 names Patient/123.
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    return len(parts) >= 2 and f"{parts[-2]}/{parts[-1]}" in patient_refs


def _interpretation_absent(holder: dict[str, Any]) -> bool:
    concepts = holder.get("interpretation")
    for concept in concepts if isinstance(concepts, list) else []:
        for coding in _codings(concept):
            if _code_text(coding) in _ABSENT_INTERPRETATIONS:
                return True
    return False


@dataclass(frozen=True, slots=True)
class _Reading:
    """What an Observation (or one component of a panel) says: its finding, whether it is there, its value."""

    keys: tuple[Key, ...]
    label_source: Any
    texts: list[str]
    presence: Presence
    value: float | None = None
    unit: str | None = None
    answer: str = ""  # an answer in words that could not be read with confidence


def _answer_text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    text = concept.get("text")
    if isinstance(text, str) and text.strip():
        return text
    return next((str(c["display"]) for c in _codings(concept) if isinstance(c.get("display"), str)), "")


def _read_observed(holder: dict[str, Any], reader: TextReader | None) -> _Reading:
    """Read a finding and its value from an Observation or a component: the value says whether it is there."""
    code = holder.get("code")
    keys = coding_keys(code)
    value_concept = holder.get("valueCodeableConcept")
    texts = _texts(code, value_concept)
    presence: Presence = "present"
    answer = ""
    if value_concept is not None and SYMPTOM_QUESTIONS.intersection(keys):
        keys, label_source = coding_keys(value_concept), value_concept
        if _interpretation_absent(holder):
            presence = "absent"
        return _Reading(keys, label_source, texts, presence)
    value: float | None = None
    unit: str | None = None
    if value_concept is not None:
        answer_keys = set(coding_keys(value_concept))
        if answer_keys & ABSENT_ANSWERS:
            presence = "absent"
        elif answer_keys & PRESENT_ANSWERS:
            presence = "present"
        elif not answer_keys and (words := _answer_text(value_concept)):
            presence, answer = _read_answer(reader, words)
    elif "valueBoolean" in holder:
        flag = _boolean(holder["valueBoolean"])
        presence = "unknown" if flag is None else "present" if flag else "absent"
    elif isinstance(holder.get("valueQuantity"), dict):
        quantity = holder["valueQuantity"]
        value = _number(quantity.get("value"))
        # The UCUM code when the quantity says it is UCUM (what thresholds convert from); else the display unit.
        ucum_code = _str(quantity.get("code")) if quantity.get("system") == "http://unitsofmeasure.org" else None
        unit = ucum_code or _str(quantity.get("unit")) or _str(quantity.get("code"))
    elif "valueInteger" in holder:
        value = _number(holder["valueInteger"])
    elif isinstance(holder.get("valueString"), str):
        presence, answer = _read_answer(reader, holder["valueString"])
    elif holder.get("dataAbsentReason") is not None:
        presence = "unknown"
    if presence == "present" and _interpretation_absent(holder):
        presence = "absent"
    return _Reading(keys, code, texts, presence, value, unit, answer)


def _read_answer(reader: TextReader | None, words: str) -> tuple[Presence, str]:
    """An answer in words: read with medspaCy's ConText; unclear answers are kept to be named to the clinician."""
    reading = reader.answer(words) if reader is not None else "unclear"
    if reading == "unclear":
        return "unknown", _short(words)
    return reading, ""


def _observation_time(resource: dict[str, Any]) -> FhirTime | None:
    return latest_of(
        [
            parse_fhir_time(resource.get("effectiveDateTime")),
            parse_fhir_time(resource.get("effectiveInstant")),
            *_period_times(resource.get("effectivePeriod")),
        ]
    ) or parse_fhir_time(resource.get("issued"))


def _observation_facts(resource: dict[str, Any], reference: str, reader: TextReader | None) -> list[Found]:
    """The Observation's own finding, and one finding per component of a panel (each with its own value)."""
    time = _observation_time(resource)
    status = _str(resource.get("status"))
    found: list[Found] = []
    holders: list[tuple[str, dict[str, Any]]] = [("", resource)]
    components = resource.get("component")
    for component in components if isinstance(components, list) else []:
        if isinstance(component, dict):
            name = (_texts(component.get("code")) or ["component"])[0]
            holders.append((f"component {len(holders)}: {name}", component))
    for part, holder in holders:
        reading = _read_observed(holder, reader)
        if part and not reading.keys and not reading.texts:
            continue
        labels = _texts(reading.label_source) or reading.texts or ["(no display)"]
        fact = Fact(
            reference,
            "Observation",
            reading.keys,
            labels[0],
            " | ".join(reading.texts),
            reading.presence,
            time,
            status,
            reading.value,
            reading.unit,
            problems=(f"{UNCLEAR_ANSWER}: {reading.answer!r}",) if reading.answer else (),
            part=part,
        )
        found.append((fact, holder.get("code")))
    return found


def _boolean(value: Any) -> bool | None:
    """The boolean as validation reads it ("yes" is true, as pydantic allows), or None when it is none."""
    try:
        return _BOOLEAN.validate_python(value)
    except ValidationError:
        return None


def _number(value: Any) -> float | None:
    """A finite float, or None (a huge integer or a non-number is no measurement)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _condition_fact(
    resource: dict[str, Any], reference: str, birth: Callable[[], FhirTime | None], encounters: frozenset[str]
) -> Fact:
    code = resource.get("code")
    clinical = _status_code(resource.get("clinicalStatus"))
    if clinical is None and any(k.startswith("abatement") for k in resource):
        clinical = "resolved"
    time, recorded, problem = condition_time(resource, birth)
    texts = _texts(code)
    at_encounter = _reference_text(resource.get("encounter")) in encounters
    return Fact(
        reference,
        "Condition",
        (*coding_keys(code), *profile_keys(resource)),
        (texts or ["(no display)"])[0],
        " | ".join(texts),
        "present",
        time,
        clinical,
        problems=(problem,) if problem else (),
        recorded=recorded,
        at_encounter=at_encounter,
    )


def _reference_text(reference: Any) -> str | None:
    value = reference.get("reference") if isinstance(reference, dict) else None
    return value.strip() if isinstance(value, str) else None


def profile_keys(resource: dict[str, Any]) -> tuple[Key, ...]:
    """The profiles a resource declares, as keys a value set can hold (an mCODE cancer condition is cancer)."""
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    if not isinstance(profiles, list):
        return ()
    return tuple((PROFILE, p.split("|")[0].strip()) for p in profiles if isinstance(p, str) and p.strip())


def _order_fact(resource: dict[str, Any], reference: str) -> Fact:
    resource_type = resource["resourceType"]
    if resource_type == "ImagingStudy":
        concepts: list[Any] = list(resource.get("procedureCode") or [])
        times = [parse_fhir_time(resource.get("started"))]
    elif resource_type == "DiagnosticReport":
        concepts = [resource.get("code")]
        times = [
            parse_fhir_time(resource.get("effectiveDateTime")),
            *_period_times(resource.get("effectivePeriod")),
            parse_fhir_time(resource.get("issued")),
        ]
    else:
        concepts = [resource.get("code")]
        times = [
            parse_fhir_time(resource.get("occurrenceDateTime")),
            *_period_times(resource.get("occurrencePeriod")),
            parse_fhir_time(resource.get("authoredOn")),
        ]
    keys = tuple(k for concept in concepts for k in coding_keys(concept))
    texts = _texts(*concepts)
    return Fact(
        reference,
        resource_type,
        keys,
        (texts or ["(no display)"])[0],
        " | ".join(texts),
        "present",
        latest_of(times),
        _str(resource.get("status")),
    )


def _why_set_aside(resource: dict[str, Any]) -> str | None:
    resource_type = resource["resourceType"]
    if resource_type == "Condition":
        verification = _status_code(resource.get("verificationStatus"))
        if verification in _IGNORED_VERIFICATION:
            return f"verificationStatus is {verification}"
        return None
    status = _str(resource.get("status"))
    if status in _IGNORED_STATUS.get(resource_type, frozenset()):
        return f"status is {status}"
    return None


def _coded_concepts(resource: dict[str, Any]) -> list[Any]:
    """Where a resource's finding, order or study code can sit: code, the answer to a symptom question, procedure,
    and the code and answer of each component of a panel."""
    concepts = [resource.get("code"), resource.get("valueCodeableConcept")]
    procedure_codes = resource.get("procedureCode")
    if isinstance(procedure_codes, list):
        concepts.extend(procedure_codes)
    elif isinstance(procedure_codes, dict):
        concepts.append(procedure_codes)
    components = resource.get("component")
    if isinstance(components, list):
        for component in components:
            if isinstance(component, dict):
                concepts += [component.get("code"), component.get("valueCodeableConcept")]
    return concepts


def raw_keys(resource: dict[str, Any]) -> list[Key]:
    """Every coding key a raw resource carries where a finding can sit (code, value, procedure code, components),
    and the profiles it declares."""
    keys = [k for concept in _coded_concepts(resource) for k in coding_keys(concept)]
    return keys + list(profile_keys(resource))


def readable_words(resource: dict[str, Any]) -> list[str]:
    """The words that may name a finding the codes do not, for a Condition or a non-laboratory Observation: the
    `code.text` and the displays of codings of a system not read in full (a hospital's own code, a SNOMED CT
    concept), of the resource and of each component of a panel."""
    return [w for concept in _finding_concepts(resource) for w in concept_words(concept)]


def _finding_concepts(resource: dict[str, Any]) -> list[Any]:
    """The `code` of the resource and of each component, when the resource can record a finding in words."""
    if resource.get("resourceType") not in ("Condition", "Observation") or _is_measurement(resource):
        return []
    concepts = [resource.get("code")]
    components = resource.get("component")
    if isinstance(components, list):
        concepts += [c.get("code") for c in components if isinstance(c, dict)]
    return concepts


def concept_words(concept: Any) -> list[str]:
    """`text` (the clinician's words), unless every coding is of a system read in full (a LOINC question's text
    names the question, not a finding), and the displays of codings of a system not read in full."""
    if not isinstance(concept, dict):
        return []
    keyed = [(c, coding_key(_str(c.get("system")), _code_text(c))) for c in _codings(concept)]
    unread = [c for c, k in keyed if k is not None and k[0] not in READ_IN_FULL]
    in_full = bool(keyed) and all(k is not None and k[0] in READ_IN_FULL for _, k in keyed)
    words: list[str] = []
    text = concept.get("text")
    if isinstance(text, str) and text.strip() and not in_full:
        words.append(_short(text))
    words += [_short(c["display"]) for c in unread if isinstance(c.get("display"), str) and c["display"].strip()]
    return list(dict.fromkeys(words))


def _is_measurement(resource: dict[str, Any]) -> bool:
    categories = resource.get("category")
    return isinstance(categories, list) and any(
        _code_text(c) in _LAB_CATEGORIES for concept in categories for c in _codings(concept)
    )


def raw_systemless_codes(resource: dict[str, Any]) -> list[str]:
    """Codes with no system where a finding can sit: they match nothing, but may be a warning sign."""
    return [c for concept in _coded_concepts(resource) for c in systemless_codes(concept)]


def _label(resource: dict[str, Any]) -> str:
    return (_texts(resource.get("code"), resource.get("valueCodeableConcept")) or ["(no display)"])[0]


def _date_text(resource: dict[str, Any]) -> str:
    for name in ("onsetDateTime", "recordedDate", "effectiveDateTime", "issued", "authoredOn", "started"):
        time = parse_fhir_time(_str(resource.get(name)))
        if time is not None:
            return time.text
    return "undated"


def _set_aside(
    resource: dict[str, Any], reason: str, category: SetAsideCategory, *, unreadable: bool = False
) -> SetAside:
    return SetAside(
        reference_of(resource),
        reason,
        category,
        unreadable,
        _label(resource),
        tuple(raw_keys(resource)),
        tuple(raw_systemless_codes(resource)),
        _date_text(resource),
    )


def _semantic_reason(resource: dict[str, Any]) -> tuple[str, SetAsideCategory] | None:
    """A clinical statement that the resource must not be used (entered in error, refuted, cancelled)."""
    reason = _why_set_aside(resource)
    if reason is None:
        return None
    if "entered-in-error" in reason:
        return reason, "entered-in-error"
    return reason, "refuted" if "refuted" in reason else "cancelled"


def _off_scale(fact: Fact) -> str | None:
    """Why a score is off its fixed scale, or None."""
    if fact.value is None:
        return None
    for key in fact.keys:
        scale = BOUNDED_SCORES.get(key)
        if scale is not None and not scale[0] <= fact.value <= scale[1]:
            return f"score {fact.value:g} is outside its scale {scale[0]:g}-{scale[1]:g}"
    return None


def _read_birth(record: PatientRecord, patient: dict[str, Any], patient_refs: frozenset[str]) -> None:
    """The patient's birth date as a fact (the Patient resource is read for nothing else)."""
    reference = reference_of(patient)
    if reference not in patient_refs or record.birth is not None:
        return
    raw = patient.get("birthDate")
    when = parse_fhir_time(raw) if isinstance(raw, str) else None
    if raw is not None and when is None:
        record.issues.append(InputIssue(reference, "Patient.birthDate", "not a FHIR date: age is unknown", "counted"))
        return
    if when is not None:
        record.birth = Fact(reference, "Patient", (), f"born {when.text}", when.text, "present", when, None)


def read_kind(raw: object) -> str | None:
    """The resource's type when it is one this service validates and reads (Patient apart), else None."""
    kind = raw.get("resourceType") if isinstance(raw, dict) else None
    return kind if isinstance(kind, str) and kind in VALIDATED_TYPES else None


Found = tuple[Fact, Any]  # a fact, and the CodeableConcept whose words may say more than its codes


@dataclass(frozen=True)
class TextPath:
    """How findings named only in words are read: the rule set's medspaCy reader, and which codes need no words."""

    reader: TextReader
    holders: Callable[[Key], frozenset[str]]  # the value sets that hold a key


def _facts_of(
    resource: dict[str, Any],
    reference: str,
    birth: Callable[[], FhirTime | None],
    encounters: frozenset[str],
    reader: TextReader | None,
) -> list[Found]:
    kind = resource["resourceType"]
    if kind == "Condition":
        return [(_condition_fact(resource, reference, birth, encounters), resource.get("code"))]
    if kind == "Observation":
        return _observation_facts(resource, reference, reader)
    return [(_order_fact(resource, reference), None)]


def _text_facts(resource: dict[str, Any], found: list[Found], text: TextPath) -> tuple[list[Fact], list[SetAside]]:
    """Findings named in words that no code of the finding names: "Weakness of both legs" as the text of a code
    for muscle weakness, a cord compression in a hospital's own code. For each finding of the resource (each
    component of a panel apart), a fact per value set its words assert that its codes do not hold, and the
    mentions that cannot be read with confidence (a supposed, questioned or possible finding), to be named."""
    if not _finding_concepts(resource):
        return [], []
    read: dict[tuple[Any, ...], Fact] = {}
    unclear: list[SetAside] = []
    for fact, concept in found:
        held = frozenset().union(*(text.holders(k) for k in fact.keys))
        for words in concept_words(concept):
            for mention in text.reader.mentions(words):
                key = (TEXT, mention.valueset)
                if text.holders(key) <= held:
                    continue  # the codes say as much already
                if mention.assertion in ("present", "historical"):
                    status = "history" if mention.assertion == "historical" else fact.status
                    read[(fact.part, key, status)] = replace(
                        fact, keys=(key,), status=status, from_text=words, systemless=()
                    )
                elif mention.assertion == "unclear":
                    reason = f"named in words not read with confidence: {words!r}"
                    unclear.append(replace(_set_aside(resource, reason, "invalid", unreadable=True), keys=(key,)))
    return list(read.values()), unclear


def build_record(
    patient_id: str,
    resources: Iterable[Any],
    *,
    patient_aliases: Iterable[str] = (),
    relevant: Callable[[dict[str, Any]], bool] | None = None,
    validator: Callable[[dict[str, Any]], Validated] = validate,
    encounter_id: str | None = None,
    text: TextPath | None = None,
) -> PatientRecord:
    """Validate, filter and normalise resources; never trust the sender to have filtered by patient or status.

    `patient_aliases` are other references that name the patient (a Bundle entry's `fullUrl`). `relevant`,
    when given, skips resources no rule can read before the costly validation (most of a chart is labs).
    `encounter_id` is the hook's encounter: its Conditions are current even undated. `text` reads findings
    named only in words. Nothing that could change the answer disappears without a trace: every resource not
    used is in `set_aside` with its reason, and every input problem is in `issues` with what became of it.
    """
    record = PatientRecord(patient_id)
    patient_refs = frozenset({f"Patient/{patient_id}", *patient_aliases})
    items = resources if isinstance(resources, list) else list(resources)
    scanned = False

    def birth() -> FhirTime | None:
        """The birth date an onsetAge is counted from: looked for ahead only when a Condition needs it before the
        Patient was read (prefetch and Bundles usually send the Patient first)."""
        nonlocal scanned
        if record.birth is None and not scanned:
            scanned = True
            for raw in items:
                if isinstance(raw, dict) and raw.get("resourceType") == "Patient":
                    _read_birth(record, raw, patient_refs)
        return record.birth.time if record.birth is not None else None

    reader = text.reader if text is not None else None
    encounters = frozenset({f"Encounter/{encounter_id}", encounter_id}) if encounter_id else frozenset()
    for raw in items:
        kind = raw.get("resourceType") if type(raw) is dict else None
        if kind == "Patient":
            if not scanned:
                _read_birth(record, raw, patient_refs)
            continue
        if type(kind) is not str or kind not in VALIDATED_TYPES:  # what read_kind says, without a call per item
            continue
        if relevant is not None and not relevant(raw):
            continue
        checked = validator(raw)
        resource = checked.resource
        reference = reference_of(resource)
        record.issues.extend(checked.issues)
        if subject_reference(resource) is None:
            record.set_aside.append(_set_aside(resource, "names no subject", "no-subject", unreadable=True))
            continue
        if checked.fatal:
            record.set_aside.append(_set_aside(resource, "not valid FHIR R4 (see issues)", "invalid", unreadable=True))
            continue
        if not names_patient(resource, patient_refs):
            record.set_aside.append(_set_aside(resource, "subject is not the patient in context", "other-patient"))
            continue
        semantic = _semantic_reason(resource)
        if semantic is not None:
            record.set_aside.append(_set_aside(resource, *semantic))
            continue
        found = _facts_of(resource, reference, birth, encounters, reader)
        facts = [fact for fact, _ in found]
        if text is not None:
            from_words, unclear = _text_facts(resource, found, text)
            facts += from_words
            record.set_aside.extend(unclear)
        systemless = tuple(raw_systemless_codes(resource))
        if systemless:
            where = f"{resource['resourceType']}.code"
            record.issues.append(InputIssue(reference, where, "a coding has no system: not matched", "counted"))
        problems = tuple(f"{i.location}: {i.message}" for i in checked.issues)
        kept = []
        for fact in facts:
            off_scale = _off_scale(fact)
            if off_scale is not None:
                record.issues.append(InputIssue(reference, "Observation.value[x]", off_scale, "set aside"))
                record.set_aside.append(_set_aside(resource, off_scale, "out-of-range", unreadable=True))
                continue
            if systemless or problems:
                fact = replace(fact, systemless=systemless, problems=(*fact.problems, *problems))
            kept.append(fact)
        if kept:
            record.resources.append(resource)
            record.facts.extend(kept)
    return record


def is_current_status(fact: Fact) -> bool:
    """False for a Condition whose clinicalStatus says it is over (inactive, remission, resolved), and for a
    finding the words call past history ("history of ...")."""
    if fact.status == "history":
        return False
    return not (fact.resource_type == "Condition" and fact.status in _NOT_CURRENT_CLINICAL)
