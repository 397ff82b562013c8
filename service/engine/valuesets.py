"""FHIR ValueSets as authors paste them, indexed once so each patient coding is looked up once.

Supported: `compose.include`/`exclude` with `concept` lists, `filter` `is-a`/`descendent-of` on ICD-10 and
ICD-10-CM (a prefix: `C50` holds `C50.911`; a block `C00-C96` holds every category in it, `C4A` included),
`compose.include.valueSet` naming other value sets of the rule set (their union), and `expansion.contains`.
`is-a` on SNOMED CT or LOINC needs a terminology server: it is accepted only with an `expansion` (written by
`python -m authoring rules expand --server URL`), and refused at load without one.

A medication value set may also name RxNorm ingredients (extension `valueset-rxnorm-ingredient`): RxNorm names
every clinical and branded drug by its ingredients, so an order whose RxNorm code is not listed is still known by
its RxNorm name ("naproxen 500 MG Oral Tablet"). Only order hooks read names, and the answer says when one did.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B.valueset import ValueSet
from pydantic import ValidationError

from service.engine.codecheck import WrittenCode, written_codes
from service.engine.units import UnitError, check_unit
from service.errors import ValueSetError, field_problems, validation_errors
from service.fhir.codes import ICD_SYSTEMS, PROFILE, TEXT, coding_key, normalise_code

Key = tuple[str, str]
_BLOCK = re.compile(r"^([A-Z])(\d{2})-([A-Z])(\d{2})$")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
EXTENSION_BASE = "https://mscc-cds.example.org/StructureDefinition/"
TEXT_TERM = EXTENSION_BASE + "valueset-text-term"  # valueString: words that name a member ("cord compression")
TEXT_PATTERN = EXTENSION_BASE + "valueset-text-pattern"  # valueString: a spaCy token pattern, as JSON
TEXT_NOT = EXTENSION_BASE + "valueset-text-not"  # valueString: words that look like a member but are not one
MEMBER_PROFILE = EXTENSION_BASE + "valueset-member-profile"  # valueCanonical: a resource declaring it is a member
UNIT = EXTENSION_BASE + "valueset-unit"  # valueCode: the UCUM unit its members are measured in (`{score}`, `mmol/L`)
RXNORM_INGREDIENT = EXTENSION_BASE + "valueset-rxnorm-ingredient"  # valueString: "naproxen", "mefenamic acid"
RXNORM_NAME_NOT = EXTENSION_BASE + "valueset-rxnorm-name-not"  # valueString: a word that takes it out: "Ophthalmic"
EXPAND_HINT = "run `python -m authoring rules expand --server URL` to fill ValueSet.expansion from a terminology server"


@dataclass
class ValueSetDef:
    id: str
    url: str
    title: str
    codes: set[Key] = field(default_factory=set)
    prefixes: set[Key] = field(default_factory=set)
    excluded_codes: set[Key] = field(default_factory=set)
    excluded_prefixes: set[Key] = field(default_factory=set)
    includes: list[str] = field(default_factory=list)  # canonical URLs of value sets whose codes this one holds
    needs_expansion: list[str] = field(default_factory=list)  # locations of is-a filters a server must expand
    has_expansion: bool = False
    text_terms: list[str] = field(default_factory=list)  # words that name a member (fhir/textread.py)
    text_patterns: list[list[dict[str, Any]]] = field(default_factory=list)  # spaCy token patterns for them
    text_not: list[str] = field(default_factory=list)  # words that look like a member and are not
    profiles: list[str] = field(default_factory=list)  # a resource declaring one of these is a member
    written: tuple[WrittenCode, ...] = ()  # the codes as written, with their locations (engine/codecheck.py)
    unit: str | None = None  # UCUM: what its members are measured in; a measurement's thresholds must agree
    ingredients: list[str] = field(default_factory=list)  # RxNorm ingredient names: a drug named with one is a member
    name_not: list[str] = field(default_factory=list)  # words in an RxNorm name that take the drug out

    def size(self) -> int:
        return len(self.codes) + len(self.prefixes) + len(self.includes) + len(self.ingredients)


def _icd_prefixes(system: str, value: str, location: str) -> list[Key]:
    value = value.strip().upper()
    block = _BLOCK.match(value.replace(".", ""))
    if block:
        first, start, last, end = block.groups()
        if first != last or int(start) > int(end):
            raise ValueSetError(location, f"block {value!r} must stay within one letter, low to high")
        numeric = [(system, f"{first}{n:02d}") for n in range(int(start), int(end) + 1)]
        # Alphanumeric categories (ICD-10-CM C4A, C7A, C7B) sit in a block when their tens fall within it.
        tens = range(int(start) // 10, int(end) // 10 + 1)
        return numeric + [(system, f"{first}{t}{letter}") for t in tens for letter in _LETTERS]
    return [(system, normalise_code(system, value))]


def _read_include(
    part: dict[str, Any], location: str, codes: set[Key], prefixes: set[Key], definition: ValueSetDef | None = None
) -> None:
    if part.get("valueSet"):
        if definition is None or part.get("system") or part.get("concept") or part.get("filter"):
            raise ValueSetError(
                f"{location}.valueSet", "only a plain include of whole value sets is supported (no exclude, no system)"
            )
        definition.includes.extend(str(url) for url in part["valueSet"])
        return
    key = coding_key(part.get("system"), "x")
    if key is None:
        raise ValueSetError(f"{location}.system", "a system is required")
    system = key[0]
    for i, concept in enumerate(part.get("concept") or []):
        concept_key = coding_key(system, concept.get("code"))
        if concept_key is None:
            raise ValueSetError(f"{location}.concept[{i}].code", "a code is required")
        codes.add(concept_key)
    for i, rule in enumerate(part.get("filter") or []):
        where = f"{location}.filter[{i}]"
        if rule.get("property") != "concept" or rule.get("op") not in ("is-a", "descendent-of"):
            raise ValueSetError(where, "only `property: concept` with `op: is-a` (or descendent-of) is supported")
        if system not in ICD_SYSTEMS:
            if definition is None:
                raise ValueSetError(where, f"is-a on {system} cannot be excluded here; list the codes instead")
            definition.needs_expansion.append(where)
            continue
        prefixes.update(_icd_prefixes(system, str(rule.get("value", "")), where))
    if not part.get("concept") and not part.get("filter"):
        raise ValueSetError(location, "including a whole code system is not supported; list concepts or filters")


def parse_valueset(raw: dict[str, Any], expected_id: str) -> ValueSetDef:
    """Validate a FHIR ValueSet and read the codes it holds; raise ValueSetError on anything unsupported."""
    try:
        ValueSet.model_validate(raw)
    except ValidationError as error:
        location, message = field_problems(validation_errors(error), whole="")[0]
        raise ValueSetError(f"ValueSet.{location}".rstrip("."), message) from None
    if raw.get("id") != expected_id:
        raise ValueSetError("ValueSet.id", f"must equal the file name {expected_id!r}")
    definition = ValueSetDef(expected_id, str(raw.get("url", "")), str(raw.get("title") or raw.get("name") or ""))
    compose = raw.get("compose") or {}
    for i, part in enumerate(compose.get("include") or []):
        _read_include(part, f"ValueSet.compose.include[{i}]", definition.codes, definition.prefixes, definition)
    for i, part in enumerate(compose.get("exclude") or []):
        _read_include(part, f"ValueSet.compose.exclude[{i}]", definition.excluded_codes, definition.excluded_prefixes)
    for i, item in enumerate((raw.get("expansion") or {}).get("contains") or []):
        key = coding_key(item.get("system"), item.get("code"))
        if key is None:
            raise ValueSetError(f"ValueSet.expansion.contains[{i}]", "system and code are required")
        definition.codes.add(key)
        definition.has_expansion = True
    _read_extensions(raw, definition)
    definition.written = written_codes(raw)
    if definition.needs_expansion and not definition.has_expansion:
        raise ValueSetError(definition.needs_expansion[0], f"is-a on this system needs an expansion: {EXPAND_HINT}")
    if definition.size() == 0:
        raise ValueSetError("ValueSet", "holds no codes")
    return definition


def _read_extensions(raw: dict[str, Any], definition: ValueSetDef) -> None:
    """Members named otherwise than by a code: by words (read with medspaCy) and by a declared profile."""
    for i, extension in enumerate(raw.get("extension") or []):
        url, where = extension.get("url"), f"ValueSet.extension[{i}]"
        if url in (TEXT_TERM, TEXT_PATTERN, TEXT_NOT):
            value = extension.get("valueString")
            if not isinstance(value, str) or not value.strip():
                raise ValueSetError(f"{where}.valueString", "words are required")
            if url == TEXT_TERM:
                definition.text_terms.append(value.strip())
            elif url == TEXT_NOT:
                definition.text_not.append(value.strip())
            else:
                definition.text_patterns.append(_token_pattern(value, where))
        elif url == UNIT:
            unit = extension.get("valueCode")
            if not isinstance(unit, str) or not unit.strip():
                raise ValueSetError(f"{where}.valueCode", "a UCUM unit is required, e.g. {score} or mmol/L")
            try:
                check_unit(unit.strip())
            except UnitError as error:
                raise ValueSetError(f"{where}.valueCode", str(error)) from None
            definition.unit = unit.strip()
        elif url in (RXNORM_INGREDIENT, RXNORM_NAME_NOT):
            value = extension.get("valueString")
            if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z][A-Za-z \-]*[A-Za-z]", value.strip()):
                raise ValueSetError(f"{where}.valueString", "an RxNorm ingredient name or word is required")
            (definition.ingredients if url == RXNORM_INGREDIENT else definition.name_not).append(value.strip().lower())
        elif url == MEMBER_PROFILE:
            profile = extension.get("valueCanonical")
            if not isinstance(profile, str) or not profile.strip():
                raise ValueSetError(f"{where}.valueCanonical", "a profile URL is required")
            definition.profiles.append(profile.strip())
    if definition.text_terms or definition.text_patterns:
        definition.codes.add((TEXT, definition.id))
    definition.codes.update((PROFILE, p) for p in definition.profiles)


def _token_pattern(text: str, where: str) -> list[dict[str, Any]]:
    try:
        pattern = json.loads(text)
    except ValueError as error:
        raise ValueSetError(f"{where}.valueString", f"a spaCy token pattern must be JSON: {error}") from None
    if not isinstance(pattern, list) or not pattern or not all(isinstance(t, dict) for t in pattern):
        raise ValueSetError(f"{where}.valueString", "a spaCy token pattern is a list of token objects")
    return pattern


def holds_nothing(vs_id: str, valuesets: dict[str, ValueSetDef]) -> bool:
    """True when every member the value set names, its included value sets' too, is taken away by its excludes
    (or theirs): a value set that matches no patient, ever. Includes must be resolved (`resolve_includes`)."""
    by_url = {vs.url: vs for vs in valuesets.values()}

    def members(vs: ValueSetDef, seen: frozenset[str]) -> tuple[set[Key], set[Key]]:
        codes, prefixes = set(vs.codes), set(vs.prefixes)
        for url in vs.includes:
            included = by_url.get(url)
            if included is not None and included.id not in seen:
                more_codes, more_prefixes = members(included, seen | {included.id})
                codes |= more_codes
                prefixes |= more_prefixes
        codes = {c for c in codes if c not in vs.excluded_codes and not _prefix_excluded(c, vs.excluded_prefixes)}
        prefixes = {p for p in prefixes if not _prefix_excluded(p, vs.excluded_prefixes)}
        return codes, prefixes

    codes, prefixes = members(valuesets[vs_id], frozenset({vs_id}))
    return not codes and not prefixes


def _prefix_excluded(key: Key, excluded_prefixes: set[Key]) -> bool:
    return any(p in excluded_prefixes for p in _prefixes_of(key))


def resolve_includes(valuesets: dict[str, ValueSetDef]) -> dict[str, str]:
    """Check every `include.valueSet` names a value set of the rule set and no cycle forms: {id: problem}."""
    by_url = {vs.url: vs.id for vs in valuesets.values()}
    problems: dict[str, str] = {}
    for vs in valuesets.values():
        unknown = [url for url in vs.includes if url not in by_url]
        if unknown:
            problems[vs.id] = f"includes unknown value set(s) {unknown}; use the `url` of a file in valuesets/"
    for vs in valuesets.values():
        seen, todo = set(), [by_url[u] for u in vs.includes if u in by_url]
        while todo:
            current = todo.pop()
            if current == vs.id:
                problems[vs.id] = "includes itself through other value sets"
                break
            if current not in seen:
                seen.add(current)
                todo += [by_url[u] for u in valuesets[current].includes if u in by_url]
    return problems


def _words(words: list[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    alternatives = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


def _name_patterns(vs: ValueSetDef) -> tuple[re.Pattern[str], re.Pattern[str] | None]:
    wanted = _words(vs.ingredients)
    assert wanted is not None
    return wanted, _words(vs.name_not)


def _prefixes_of(key: Key) -> list[Key]:
    system, code = key
    return [(system, code[:n]) for n in range(1, len(code) + 1)] if system in ICD_SYSTEMS else []


class CodeIndex:
    """From a coding to the value sets that hold it: one dict lookup per coding (plus prefixes for ICD)."""

    def __init__(self, valuesets: dict[str, ValueSetDef]) -> None:
        self.valuesets = valuesets
        self._exact: dict[Key, set[str]] = {}
        self._prefix: dict[Key, set[str]] = {}
        self._by_code: dict[str, set[str]] = {}  # a code in any system: for codings that name no system
        by_url = {vs.url: vs.id for vs in valuesets.values()}
        self._parents: dict[str, set[str]] = {}  # value set -> the value sets that include it
        for vs in valuesets.values():
            for key in vs.codes:
                self._exact.setdefault(key, set()).add(vs.id)
                self._by_code.setdefault(key[1], set()).add(vs.id)
            for key in vs.prefixes:
                self._prefix.setdefault(key, set()).add(vs.id)
            for url in vs.includes:
                if url in by_url:
                    self._parents.setdefault(by_url[url], set()).add(vs.id)
        self._cache: dict[Key, frozenset[str]] = {}
        self._names = {vs.id: _name_patterns(vs) for vs in valuesets.values() if vs.ingredients}

    def by_rxnorm_name(self, name: str) -> dict[str, str]:
        """{value set id: the ingredient} for each value set that names an ingredient of this RxNorm drug name."""
        found: dict[str, str] = {}
        for vs_id, (wanted, unwanted) in self._names.items():
            hit = wanted.search(name)
            if hit and not (unwanted and unwanted.search(name)):
                found[vs_id] = hit.group(0).lower()
        return found

    def _excluded(self, vs_id: str, key: Key) -> bool:
        vs = self.valuesets[vs_id]
        return key in vs.excluded_codes or any(p in vs.excluded_prefixes for p in _prefixes_of(key))

    def lookup(self, key: Key) -> frozenset[str]:
        """Ids of the value sets holding this (canonical system, normalised code)."""
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        found = set(self._exact.get(key, ()))
        for prefix in _prefixes_of(key):
            found.update(self._prefix.get(prefix, ()))
        held = {v for v in found if not self._excluded(v, key)}
        todo = list(held)
        while todo:  # a value set that includes a holder holds the code too, unless it excludes it
            for parent in self._parents.get(todo.pop(), ()):
                if parent not in held and not self._excluded(parent, key):
                    held.add(parent)
                    todo.append(parent)
        result = frozenset(held)
        if len(self._cache) < 100_000:
            self._cache[key] = result
        return result

    def lookup_any_system(self, code: str) -> frozenset[str]:
        """Value sets holding this code in some system (exact codes, and ICD prefixes with or without a dot).

        Only for reporting a coding that names no system: such a coding never counts as a match.
        """
        found = set(self._by_code.get(code.strip(), ()))
        for system in ICD_SYSTEMS:
            found |= self.lookup((system, normalise_code(system, code)))
        return frozenset(found)
