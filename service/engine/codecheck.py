"""Value sets checked like code: every system a known one, every code one that exists, found at load.

A misspelt system (`http://loinc.og`) or a code that does not exist matches no patient, ever, and passes every
other check: the rule tests build their patients from the same value sets. So at load:
- a system must be one this service knows (SNOMED CT, LOINC, ICD-10-CM, WHO ICD-10, RxNorm, CPT, written any way
  `fhir/codes.py` recognises), or one the site declares its own (`local_systems` in site.yaml);
- an ICD-10-CM or WHO ICD-10 code or `is-a` value must be an item of the edition in `rules/terminology/`
  (`terminology.py`); a block (`C00-C96`) must be a block of it;
- a SNOMED CT code must be a concept identifier (its Verhoeff check digit and its partition), a LOINC code must
  carry its check digit, an RxNorm code is digits, a CPT code five characters: a typo is caught without a
  terminology server.
Each problem names the JSON location, which the loader turns into a file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from service.engine.terminology import IcdEditions
from service.fhir.codes import CPT, ICD10, ICD10CM, LOINC, RXNORM, SNOMED, canonical_system, normalise_code

KNOWN_SYSTEMS = frozenset({SNOMED, LOINC, ICD10CM, ICD10, RXNORM, CPT})
_LOINC = re.compile(r"^(\d{1,7})-(\d)$")
_SCTID = re.compile(r"^[1-9]\d{5,17}$")
_CPT = re.compile(r"^\d{4}[0-9FTU]$")
_BLOCK = re.compile(r"^([A-Z]\d{2}(?:\.?[0-9A-Z]+)?)-([A-Z]\d{2}(?:\.?[0-9A-Z]+)?)$")

# Verhoeff tables (SNOMED CT identifiers end with a Verhoeff check digit)
_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]


def verhoeff_valid(number: str) -> bool:
    check = 0
    for position, digit in enumerate(reversed(number)):
        check = _D[check][_P[position % 8][int(digit)]]
    return check == 0


def loinc_check_digit(number: str) -> int:
    """LOINC's mod 10 check digit of the part before the hyphen (the Luhn scheme)."""
    total = 0
    for position, digit in enumerate(reversed(number)):
        value = int(digit) * (2 if position % 2 == 0 else 1)
        total += value // 10 + value % 10
    return (10 - total % 10) % 10


def system_problem(system: str | None, local_systems: frozenset[str]) -> str | None:
    """Why a value set may not use this system, or None."""
    if not system:
        return "a system is required"
    canonical = canonical_system(system)
    if canonical in KNOWN_SYSTEMS or system in local_systems or canonical in local_systems:
        return None
    known = ", ".join(sorted(KNOWN_SYSTEMS))
    return (
        f"unknown code system {system!r}: no patient coding will ever match it; use one of {known}, "
        "or declare a hospital's own system under local_systems in the site's site.yaml"
    )


def code_problem(system: str, code: str, editions: IcdEditions, *, is_a: bool = False) -> str | None:
    """Why `code` cannot be a code of `system` (canonical), or None. Local systems are not checked."""
    code = code.strip()
    if not code:
        return "a code is required"
    if system in (ICD10CM, ICD10):
        block = _BLOCK.match(code.upper())
        if block is not None and is_a:
            ends = [normalise_code(system, end) for end in block.groups()]
            missing = [end for end in ends if not editions.holds(system, end)]
            if missing:
                return f"{code}: {', '.join(missing)} is not in {editions.edition(system)}"
            return None
        if not editions.holds(system, normalise_code(system, code)):
            return f"{code} is not a code of {editions.edition(system)}"
        return None
    if system == SNOMED:
        if not _SCTID.match(code):
            return f"{code} is not a SNOMED CT identifier (6 to 18 digits)"
        if code[-3:-1] not in ("00", "10"):
            return f"{code} is not a SNOMED CT concept identifier (its partition is {code[-3:-1]}, not 00 or 10)"
        if not verhoeff_valid(code):
            return f"{code} is not a SNOMED CT identifier: its check digit is wrong (a typo?)"
        return None
    if system == LOINC:
        match = _LOINC.match(code)
        if match is None:
            return f"{code} is not a LOINC code (digits, a hyphen and a check digit, e.g. 72514-3)"
        if loinc_check_digit(match.group(1)) != int(match.group(2)):
            return f"{code} is not a LOINC code: its check digit is wrong (a typo?)"
        return None
    if system == RXNORM and not code.isdigit():
        return f"{code} is not an RxNorm concept id (digits only)"
    if system == CPT and not _CPT.match(code):
        return f"{code} is not a CPT code (five characters, e.g. 72156)"
    return None


@dataclass(frozen=True)
class WrittenCode:
    """One system and code (or is-a value) as a value set's author wrote it, with its JSON location."""

    location: str  # of the code, e.g. ValueSet.compose.include[0].concept[3].code
    system_location: str
    system: str | None
    code: str
    is_a: bool = False


def written_codes(raw: dict[str, Any]) -> tuple[WrittenCode, ...]:
    """Every coded member a ValueSet names (include, exclude, expansion); whole-value-set includes aside."""
    found: list[WrittenCode] = []
    compose = raw.get("compose") or {}
    for kind in ("include", "exclude"):
        for i, part in enumerate(compose.get(kind) or []):
            if not isinstance(part, dict) or (part.get("valueSet") and not part.get("system")):
                continue
            where, system = f"ValueSet.compose.{kind}[{i}]", part.get("system")
            for j, concept in enumerate(part.get("concept") or []):
                code = str(concept.get("code") or "")
                found.append(WrittenCode(f"{where}.concept[{j}].code", f"{where}.system", system, code))
            for k, rule in enumerate(part.get("filter") or []):
                value = str(rule.get("value") or "")
                found.append(WrittenCode(f"{where}.filter[{k}].value", f"{where}.system", system, value, is_a=True))
            if not part.get("concept") and not part.get("filter"):
                found.append(WrittenCode(f"{where}.system", f"{where}.system", system, ""))
    for i, item in enumerate((raw.get("expansion") or {}).get("contains") or []):
        if isinstance(item, dict):
            where = f"ValueSet.expansion.contains[{i}]"
            found.append(
                WrittenCode(f"{where}.code", f"{where}.system", item.get("system"), str(item.get("code") or ""))
            )
    return tuple(found)


def code_problems(
    written: tuple[WrittenCode, ...], editions: IcdEditions, local_systems: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """(location, problem) for every unknown system (once per include) and every code that does not exist."""
    problems: list[tuple[str, str]] = []
    systems_reported: set[str] = set()
    for item in written:
        unknown = system_problem(item.system, local_systems)
        if unknown is not None:
            if item.system_location not in systems_reported:
                systems_reported.add(item.system_location)
                problems.append((item.system_location, unknown))
            continue
        canonical = canonical_system(item.system) or ""
        if canonical not in KNOWN_SYSTEMS or not item.code:
            continue  # a hospital's own system: its codes are its own
        problem = code_problem(canonical, item.code, editions, is_a=item.is_a)
        if problem is not None:
            problems.append((item.location, problem))
    return problems
