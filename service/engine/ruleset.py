"""A loaded, validated rule set: what the engine evaluates. Built only by `service.engine.loader`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from service.engine.criteria import CriterionNode
from service.engine.model import RuleSetConfig, RuleVersion, ServiceEntry
from service.engine.prefetchplan import PlannedKey, ReadCodes, codes_read, plan_service
from service.engine.site import Site
from service.engine.terminology import load_editions
from service.engine.valuesets import CodeIndex
from service.fhir.codes import READ_IN_FULL, canonical_system
from service.fhir.record import TextPath, profile_keys, raw_keys, raw_systemless_codes, readable_words
from service.fhir.textread import TextReader

INDICATOR_RANK = {"info": 0, "warning": 1, "critical": 2}


# What one coding tells `RuleSet.relevant`: a rule reads it; it says all (its system is read in full); or only its
# words can tell (a hospital's own code, a SNOMED CT concept outside the lists).
_READ, _FULL, _WORDS = "read", "full", "words"


@dataclass(frozen=True)
class CompiledRule:
    spec: RuleVersion
    path: str
    criteria: dict[str, CriterionNode]
    order: tuple[str, ...]  # criteria in dependency order: children before parents
    content_hash: str = ""  # of the version file's logic (engine/lock.py): released versions never change

    @cached_property
    def sign_valuesets(self) -> frozenset[str]:
        """The value sets of codes that can be warning signs, as its criteria declare them (once per rule)."""
        return frozenset(
            read.valueset for c in self.criteria.values() for read in c.reads if read.sign and read.valueset
        )

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def ref(self) -> str:
        return f"{self.spec.id}@{self.spec.version}"

    def applies_to(self, hook: str | None) -> bool:
        return hook is None or self.spec.hooks is None or hook in self.spec.hooks


@dataclass(frozen=True)
class RuleSet:
    config: RuleSetConfig
    revision: str
    root: Path
    codes: CodeIndex
    rules: dict[str, dict[str, CompiledRule]] = field(default_factory=dict)
    site: Site | None = None  # a hospital's own codes, added to the value sets (engine/site.py)
    text_reader: TextReader | None = None  # reads findings named in words (value sets' text terms)

    @cached_property
    def text_path(self) -> TextPath | None:
        """How build_record reads words: the reader, and which codes a value set holds (they need no words)."""
        if self.text_reader is None:
            return None
        codes = self.codes
        return TextPath(self.text_reader, codes.lookup)

    def active(self) -> list[CompiledRule]:
        """Active versions, most urgent first, then by id: the order in which cards win."""
        return list(self._active)

    @cached_property
    def _active(self) -> tuple[CompiledRule, ...]:
        found = [v for versions in self.rules.values() for v in versions.values() if v.spec.status == "active"]
        return tuple(sorted(found, key=lambda r: (-INDICATOR_RANK[r.spec.card.indicator], self.precedence(r.id), r.id)))

    def precedence(self, rule_id: str) -> int:
        """The rule's place in ruleset.yaml `precedence` (a strict load makes sure every rule has one; a rule set
        older than `precedence`, read only to compare with, falls back to name order)."""
        order = self.config.precedence
        return order.index(rule_id) if rule_id in order else len(order)

    def drafts(self) -> list[CompiledRule]:
        """Draft versions, for shadow evaluation."""
        return [v for versions in self.rules.values() for v in versions.values() if v.spec.status == "draft"]

    def version(self, rule_id: str, version: str | None = None) -> CompiledRule | None:
        """A named version, or the active one when no version is given."""
        versions = self.rules.get(rule_id, {})
        if version is not None:
            return versions.get(version)
        return next((v for v in versions.values() if v.spec.status == "active"), None)

    def relevant(self, resource: dict[str, Any]) -> bool:
        """Can any rule read this raw resource? True when one of its codes is in a value set, or when a criterion
        reads every resource of its type (`types_read_whole`). It runs on every resource of a prefetch, before
        validation, so the answer for each (system, code) pair as sent is remembered: a chart's thousand glucose
        results cost one value-set lookup and a thousand dictionary reads."""
        kind = resource.get("resourceType")
        if isinstance(kind, str) and kind in self.types_read_whole:
            return True
        known = self._relevant_codings
        named = False  # words of a code not read in full (a display, a text) name something a rule reads
        for concept in (resource.get("code"), resource.get("valueCodeableConcept"), resource.get("procedureCode")):
            if concept is None:
                continue
            codings = concept.get("coding") if type(concept) is dict else None
            if type(codings) is not list:
                return self._relevant_slowly(resource)  # an odd shape: read it the long way
            read_in_full = bool(codings)
            for coding in codings:
                if type(coding) is not dict:
                    continue
                pair = (coding.get("system"), coding.get("code"))
                try:
                    verdict = known.get(pair)
                except TypeError:  # a system or code that is not a string (an invalid resource)
                    return self._relevant_slowly(resource)
                if verdict is None:
                    verdict = self._coding_verdict(pair[0], coding)
                    if len(known) >= 100_000:
                        known.clear()  # a flood of distinct codes never grows memory without bound
                    known[pair] = verdict
                if verdict is _READ:
                    return True
                if verdict is _WORDS:  # no value set holds it, and its system does not say all: read its words
                    read_in_full = False
                    named = named or self._names_something(coding.get("display"))
            if not read_in_full:
                named = named or self._names_something(concept.get("text"))
        if "meta" in resource and any(self.codes.lookup(k) for k in profile_keys(resource)):
            return True  # a declared profile (an mCODE cancer condition)
        if "component" in resource:
            return self._relevant_slowly(resource)  # a panel's components are findings of their own
        # Words that name something: the resource is read the long way, as build_record will read it.
        return named and self._names_in_words(resource)

    def _names_something(self, words: Any) -> bool:
        """Do these words name anything a value set holds? Remembered per text (a chart repeats its displays)."""
        reader = self.text_reader
        return reader is not None and type(words) is str and bool(reader.mentions(words))

    def _relevant_slowly(self, resource: dict[str, Any]) -> bool:
        if any(self.codes.lookup(key) for key in raw_keys(resource)):
            return True
        # A coding that names no system never matches, but one whose code a rule reads must still be reported.
        if any(self.codes.lookup_any_system(code) for code in raw_systemless_codes(resource)):
            return True
        return self._names_in_words(resource)

    def _names_in_words(self, resource: dict[str, Any]) -> bool:
        """Do the words of codes no value set holds (a hospital's own code, `code.text`) name something a rule reads?"""
        reader = self.text_reader
        if reader is None or resource.get("resourceType") not in ("Condition", "Observation"):
            return False
        try:
            return any(reader.mentions(words) for words in readable_words(resource))
        except (TypeError, AttributeError):  # an odd shape: validation names it
            return True

    @cached_property
    def _relevant_codings(self) -> dict[tuple[Any, Any], str]:
        return {}

    def _coding_verdict(self, system: Any, coding: dict[str, Any]) -> str:
        """What one coding (as sent) tells: a rule reads it, it says all there is (a system read in full), or only
        its words can tell. Worked out once per (system, code) and remembered by `relevant`."""
        if self._relevant_slowly({"code": {"coding": [coding]}}):
            return _READ
        return _FULL if type(system) is str and canonical_system(system) in READ_IN_FULL else _WORDS

    @cached_property
    def types_read_whole(self) -> frozenset[str]:
        """Resource types some criterion reads every one of (a FHIRPath criterion): no code says which."""
        return frozenset(
            kind
            for versions in self.rules.values()
            for rule in versions.values()
            for c in rule.criteria.values()
            for read in c.reads
            if read.valueset is None
            for kind in read.types
        )

    def service(self, service_id: str, *, minimal_prefetch: bool = True) -> ServiceEntry | None:
        """The service as `ruleset.yaml` declares it, or with the minimal prefetch derived from the rules."""
        if minimal_prefetch:
            planned = self.prefetch_plan.get(service_id)
            return planned[0] if planned else None
        return next((s for s in self.config.services if s.id == service_id), None)

    def services(self, *, minimal_prefetch: bool = True) -> list[ServiceEntry]:
        if minimal_prefetch:
            return [self.prefetch_plan[s.id][0] for s in self.config.services]
        return list(self.config.services)

    @cached_property
    def codes_read(self) -> dict[str, ReadCodes]:
        """Per resource type, the codes any rule version (active or draft) reads."""
        criteria = (c for versions in self.rules.values() for rule in versions.values() for c in rule.criteria.values())
        editions, _ = load_editions(self.root)  # ICD ranges of small value sets are spelt out (read once per file)
        return codes_read(criteria, self.codes.valuesets, editions)

    @cached_property
    def prefetch_plan(self) -> dict[str, tuple[ServiceEntry, dict[str, PlannedKey]]]:
        """Per service: the service with minimal prefetch, and its planned keys (`engine/prefetchplan.py`)."""
        return {s.id: plan_service(s, self.codes_read) for s in self.config.services}

    @cached_property
    def prefetch_bases(self) -> dict[str, dict[str, str]]:
        """Per service: each planned key's base query, the one fetched when a server refuses the narrowed one."""
        return {sid: {k: p.base for k, p in keys.items()} for sid, (_, keys) in self.prefetch_plan.items()}
