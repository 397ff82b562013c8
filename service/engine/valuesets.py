"""FHIR ValueSets as authors paste them, indexed once so each patient coding is looked up once.

Supported: `compose.include`/`exclude` with `concept` lists, `filter` `is-a`/`descendent-of` on ICD-10 and
ICD-10-CM (a prefix: `C50` holds `C50.911`; a block `C00-C96` holds every category in it), and a pasted
`expansion.contains`. Anything else (is-a on SNOMED CT, references to other value sets) needs a terminology
server and is refused at load with a message saying to paste an expansion instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B.valueset import ValueSet
from pydantic import ValidationError

from service.fhir.codes import ICD_SYSTEMS, coding_key, normalise_code

Key = tuple[str, str]
_BLOCK = re.compile(r"^([A-Z])(\d{2})-([A-Z])(\d{2})$")


class ValueSetError(ValueError):
    """A value set that cannot be served, with the FHIRPath-like location of the problem."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


@dataclass
class ValueSetDef:
    id: str
    url: str
    title: str
    codes: set[Key] = field(default_factory=set)
    prefixes: set[Key] = field(default_factory=set)
    excluded_codes: set[Key] = field(default_factory=set)
    excluded_prefixes: set[Key] = field(default_factory=set)

    def size(self) -> int:
        return len(self.codes) + len(self.prefixes)


def _icd_prefixes(system: str, value: str, location: str) -> list[Key]:
    value = value.strip().upper()
    block = _BLOCK.match(value.replace(".", ""))
    if block:
        first, start, last, end = block.groups()
        if first != last or int(start) > int(end):
            raise ValueSetError(location, f"block {value!r} must stay within one letter, low to high")
        return [(system, f"{first}{n:02d}") for n in range(int(start), int(end) + 1)]
    return [(system, normalise_code(system, value))]


def _read_include(part: dict[str, Any], location: str, codes: set[Key], prefixes: set[Key]) -> None:
    if part.get("valueSet"):
        raise ValueSetError(f"{location}.valueSet", "references to other value sets are not supported; list codes")
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
            raise ValueSetError(
                where, f"is-a on {system} needs a terminology server: paste the expansion as concepts instead"
            )
        prefixes.update(_icd_prefixes(system, str(rule.get("value", "")), where))
    if not part.get("concept") and not part.get("filter"):
        raise ValueSetError(location, "including a whole code system is not supported; list concepts or filters")


def parse_valueset(raw: dict[str, Any], expected_id: str) -> ValueSetDef:
    """Validate a FHIR ValueSet and read the codes it holds; raise ValueSetError on anything unsupported."""
    try:
        ValueSet.model_validate(raw)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        raise ValueSetError("ValueSet." + ".".join(str(p) for p in first["loc"]), first["msg"]) from None
    if raw.get("id") != expected_id:
        raise ValueSetError("ValueSet.id", f"must equal the file name {expected_id!r}")
    definition = ValueSetDef(expected_id, str(raw.get("url", "")), str(raw.get("title") or raw.get("name") or ""))
    compose = raw.get("compose") or {}
    for i, part in enumerate(compose.get("include") or []):
        _read_include(part, f"ValueSet.compose.include[{i}]", definition.codes, definition.prefixes)
    for i, part in enumerate(compose.get("exclude") or []):
        _read_include(part, f"ValueSet.compose.exclude[{i}]", definition.excluded_codes, definition.excluded_prefixes)
    for i, item in enumerate((raw.get("expansion") or {}).get("contains") or []):
        key = coding_key(item.get("system"), item.get("code"))
        if key is None:
            raise ValueSetError(f"ValueSet.expansion.contains[{i}]", "system and code are required")
        definition.codes.add(key)
    if definition.size() == 0:
        raise ValueSetError("ValueSet", "holds no codes")
    return definition


def _prefixes_of(key: Key) -> list[Key]:
    system, code = key
    return [(system, code[:n]) for n in range(1, len(code) + 1)] if system in ICD_SYSTEMS else []


class CodeIndex:
    """From a coding to the value sets that hold it: one dict lookup per coding (plus prefixes for ICD)."""

    def __init__(self, valuesets: dict[str, ValueSetDef]) -> None:
        self.valuesets = valuesets
        self._exact: dict[Key, set[str]] = {}
        self._prefix: dict[Key, set[str]] = {}
        for vs in valuesets.values():
            for key in vs.codes:
                self._exact.setdefault(key, set()).add(vs.id)
            for key in vs.prefixes:
                self._prefix.setdefault(key, set()).add(vs.id)
        self._cache: dict[Key, frozenset[str]] = {}

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
        result = frozenset(v for v in found if not self._excluded(v, key))
        if len(self._cache) < 100_000:
            self._cache[key] = result
        return result
