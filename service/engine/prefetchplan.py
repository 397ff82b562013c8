"""Minimal prefetch, derived from the rules: each query asks the EHR only for what some rule can read.

`ruleset.yaml` names the base query of each prefetch key (`Observation?patient={{context.patientId}}`). From the
criteria of every rule version (active and draft) the planner works out which codes each resource type is read
for, as the reference implementations of clinical reasoning derive data requirements from the logic:

- a type whose codes can all be listed (enumerated value sets, at most `MAX_LISTED` codes, no ICD prefix, no
  FHIRPath criterion reading the whole type) is asked for with a code filter: `&code=system|code,...`;
- Observations whose codes cannot be listed (the cancer value set holds thousands of codes, and findings written
  only in words are read too) take three keys, each inside the query subset CDS Hooks 3.0 asks clients to support
  (token equality, no `:not`):
  - `observations`: every category but laboratory, listed (`category=exam,survey,vital-signs,...`: the FHIR
    observation-category codes and the US Core ones, as bare codes that match in any system);
  - `observations_coded`: the findings the rules read by a listable code, in the Observation's code or a
    component's, whatever their category (`combo-code=...`, a FHIR R4 token parameter; the codes are bare, which
    matches them in any system and keeps the query near 3 KB: an extra match costs nothing, as the rules read
    only what they hold): a weakness, or a panel holding one, recorded with no category or a local one, is still
    asked for, and so are ICD-coded findings, their ranges spelt out from rules/terminology;
  - `observations_laboratory`: laboratory results only for the LOINC codes a rule reads. US Core laboratory
    results are LOINC-coded; in the real records of fhir_examples/realdata three Observations in four are
    laboratory results, and none of them is read by any rule.
  What no key asks for: an Observation with no category (or only a local one) whose code is local, written only
  in words, or a cancer code. An EHR that records findings that way registers the base queries
  (`MSCC_MINIMAL_PREFETCH=false`, docs/integration.md). In the real records every Observation has a category, and
  the one whose category is not a standard code (`vital-sign`) is a vital sign no rule reads;
- any other type keeps its base query (ImagingStudy, whose procedure code FHIR R4 cannot search by, too).

Fallbacks, for EHRs that do not do what a filter asks: an EHR that ignores a filter sends more (a resource sent
under two keys is read once); a prefetch key answered with an OperationOutcome, or a fetch the FHIR server
refuses, is fetched again with the base query (`cdshooks/call.py`); `MSCC_MINIMAL_PREFETCH=false` advertises the
base queries in discovery for an EHR whose prefetch engine cannot handle them at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from service.engine.criteria import CriterionNode
from service.engine.model import ServiceEntry
from service.engine.terminology import IcdEditions
from service.engine.valuesets import ValueSetDef
from service.fhir.codes import ICD_SYSTEMS, LOINC, PROFILE, TEXT
from service.fhir.record import SYMPTOM_QUESTIONS

PSEUDO_SYSTEMS = frozenset({TEXT, PROFILE})
MAX_LISTED = 100  # codes in one query string: about 4 KB, within what FHIR servers and proxies take
MAX_CODED = 400  # the findings' codes of `observations_coded`, bare (no system): about 4 KB
LAB_SUFFIX = "_laboratory"
CODED_SUFFIX = "_coded"
# Every Observation category but laboratory: http://terminology.hl7.org/CodeSystem/observation-category (FHIR R4)
# and the US Core category codes. Bare codes: a token without a system matches the code in any system.
NOT_LABORATORY = (
    "social-history,vital-signs,imaging,procedure,survey,exam,therapy,activity,"
    "clinical-test,sdoh,functional-status,disability-status,cognitive-status"
)
# Types whose FHIR R4 search has a `code` parameter on the code the rules read (ImagingStudy has none for
# procedureCode: its query stays as it is).
_CODE_SEARCH = frozenset({"Condition", "Observation", "ServiceRequest", "DiagnosticReport"})


@dataclass(frozen=True)
class PlannedKey:
    """One prefetch key as discovery offers it: its query, the base query it narrows, and why."""

    key: str
    query: str
    base: str
    why: str


@dataclass(frozen=True)
class ReadCodes:
    """The codes the rules read on one resource type; `listable` False when they cannot all be named. `listed`:
    the codes of the value sets small enough to list, their ICD ranges spelt out (`_listing`)."""

    codes: frozenset[tuple[str, str]]
    listable: bool
    listed: frozenset[tuple[str, str]] = frozenset()


def _expanded(
    valuesets: dict[str, ValueSetDef], valueset_id: str, by_url: dict[str, str], seen: frozenset[str] = frozenset()
) -> ReadCodes:
    definition = valuesets[valueset_id]
    codes = {k for k in definition.codes if k[0] not in PSEUDO_SYSTEMS} - definition.excluded_codes
    named_otherwise = len(codes) < len(definition.codes)  # words or a profile name members: no code list says all
    unlisted = definition.prefixes or definition.needs_expansion or definition.excluded_prefixes
    listable = not (unlisted or named_otherwise)
    for url in definition.includes:
        included = by_url.get(url)
        if included is None or included in seen:
            listable = False
            continue
        inner = _expanded(valuesets, included, by_url, seen | {valueset_id})
        codes |= set(inner.codes) - definition.excluded_codes
        listable = listable and inner.listable
    return ReadCodes(frozenset(codes), listable and not any(system in ICD_SYSTEMS for system, _ in codes))


def _listing(
    valuesets: dict[str, ValueSetDef],
    valueset_id: str,
    by_url: dict[str, str],
    editions: IcdEditions | None,
    seen: frozenset[str] = frozenset(),
) -> set[tuple[str, str]] | None:
    """Every code of a small value set, its ICD ranges spelt out from the edition's code list (`M54.1` gives
    M54.10 ... M54.18); None when it cannot be listed (too many codes, an is-a filter, a range excluded)."""
    definition = valuesets[valueset_id]
    if definition.needs_expansion or definition.excluded_prefixes:
        return None
    codes = {k for k in definition.codes if k[0] not in PSEUDO_SYSTEMS}
    for system, prefix in definition.prefixes:
        under = editions.under(system, prefix) if editions is not None else None
        if under is None:
            return None
        codes.update((system, code) for code in under)
        if len(codes) > MAX_CODED:
            return None
    for url in definition.includes:
        included = by_url.get(url)
        inner = (
            None
            if included is None or included in seen
            else _listing(valuesets, included, by_url, editions, seen | {valueset_id})
        )
        if inner is None:
            return None
        codes |= inner
    codes -= definition.excluded_codes
    return codes if len(codes) <= MAX_CODED else None


def codes_read(
    criteria: Iterable[CriterionNode], valuesets: dict[str, ValueSetDef], editions: IcdEditions | None = None
) -> dict[str, ReadCodes]:
    """Per resource type, the codes these criteria read, as each criterion declares (`CriterionNode.reads`)."""
    found: dict[str, set[tuple[str, str]]] = {}
    listed: dict[str, set[tuple[str, str]]] = {}
    listable: dict[str, bool] = {}
    by_url = {v.url: v.id for v in valuesets.values()}
    for criterion in criteria:
        for read in criterion.reads:
            whole = read.valueset is None  # every resource of the types: no code list says which
            what = ReadCodes(frozenset(), False) if whole else _expanded(valuesets, str(read.valueset), by_url)
            small = (None if whole else _listing(valuesets, str(read.valueset), by_url, editions)) or set()
            for kind in read.types:
                found.setdefault(kind, set()).update(what.codes)
                listed.setdefault(kind, set()).update(small)
                listable[kind] = listable.get(kind, True) and what.listable
    if "Observation" in found:  # a symptom question carries its finding in the value: the question is read
        found["Observation"] |= SYMPTOM_QUESTIONS
        listed["Observation"] |= SYMPTOM_QUESTIONS
    return {kind: ReadCodes(frozenset(codes), listable[kind], frozenset(listed[kind])) for kind, codes in found.items()}


def _as_written(system: str, code: str) -> str:
    """A code as EHRs write it: ICD codes are held without their dot (`R201`) and written with it (`R20.1`)."""
    if system in ICD_SYSTEMS and len(code) > 3 and "." not in code:
        return f"{code[:3]}.{code[3:]}"
    return code


def _token_list(codes: frozenset[tuple[str, str]]) -> str:
    return ",".join(f"{system}|{_as_written(system, code)}" for system, code in sorted(codes))


def plan_key(key: str, base: str, read: dict[str, ReadCodes]) -> list[PlannedKey]:
    """The planned queries for one base query (one, or two for Observations split by category)."""
    kind = base.split("?", 1)[0]
    if kind not in read or "?" not in base or "&code=" in base or "category" in base:
        return [PlannedKey(key, base, base, "no rule reads it by code, or the query is already narrowed")]
    what = read[kind]
    if kind not in _CODE_SEARCH:
        return [PlannedKey(key, base, base, f"FHIR has no search by the code the rules read on {kind}")]
    if what.listable and len(what.codes) <= MAX_LISTED:
        query = f"{base}&code={_token_list(what.codes)}"
        return [PlannedKey(key, query, base, f"the {len(what.codes)} codes the rules read")]
    if kind != "Observation":
        return [PlannedKey(key, base, base, "the codes the rules read cannot be listed")]
    planned = [PlannedKey(key, f"{base}&category={NOT_LABORATORY}", base, "every category but laboratory")]
    if what.listed and len(what.listed) <= MAX_CODED:
        bare = sorted({_as_written(system, code) for system, code in what.listed})
        coded = f"{base}&combo-code={','.join(bare)}"
        planned.append(PlannedKey(key + CODED_SUFFIX, coded, base, "findings read by code, whatever their category"))
    loinc = frozenset(c for c in what.codes if c[0] == LOINC)
    if loinc:
        lab_query = f"{base}&category=laboratory" + (f"&code={_token_list(loinc)}" if len(loinc) <= MAX_LISTED else "")
        planned.append(PlannedKey(key + LAB_SUFFIX, lab_query, base, "laboratory results with a LOINC code read"))
    return planned


def plan_service(service: ServiceEntry, read: dict[str, ReadCodes]) -> tuple[ServiceEntry, dict[str, PlannedKey]]:
    """The service as discovery offers it with minimal prefetch, and its planned keys (by key)."""
    keys: dict[str, PlannedKey] = {}
    optional = list(service.optional_prefetch)
    for key, base in service.prefetch.items():
        for planned in plan_key(key, base, read):
            keys[planned.key] = planned
            if planned.key != key:  # an EHR registered before the key existed does not send it: fetched if it can be
                optional.append(planned.key)
    narrowed = service.model_copy(
        update={"prefetch": {k: p.query for k, p in keys.items()}, "optional_prefetch": optional}
    )
    return narrowed, keys
