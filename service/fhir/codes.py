"""Coding systems: EHRs spell the same system several ways, and ICD codes with or without a dot.

Matching is on (canonical system, normalised code), so every variant below must collapse to one key.
"""

from __future__ import annotations

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"

ICD_SYSTEMS = frozenset({ICD10CM, ICD10})
# Pseudo-systems of this service: a value set named in a finding's words (`fhir/textread.py`), and a profile a
# resource declares (`meta.profile`, as mCODE's cancer conditions do). Value sets hold them like any code.
TEXT = "urn:mscc-cds:text"
PROFILE = "urn:mscc-cds:profile"
# Systems whose codes this service reads in full: a code of theirs that no value set holds is known not to be a
# warning sign (ICD-10 and ICD-10-CM value sets are built on the whole classification; LOINC codes name questions,
# not findings). A code of any other system (a hospital's own, a SNOMED CT concept outside the lists) is read
# through its words.
READ_IN_FULL = frozenset({ICD10CM, ICD10, LOINC, TEXT, PROFILE})

_ALIASES: dict[str, str] = {
    "urn:oid:2.16.840.1.113883.6.96": SNOMED,
    "http://snomed.info/sct": SNOMED,
    "http://snomed.info/id": SNOMED,
    "urn:oid:2.16.840.1.113883.6.90": ICD10CM,
    "http://hl7.org/fhir/sid/icd-10-cm": ICD10CM,
    "http://hl7.org/fhir/sid/icd-10-us": ICD10CM,
    "urn:oid:2.16.840.1.113883.6.3": ICD10,
    "http://hl7.org/fhir/sid/icd-10": ICD10,
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "http://loinc.org": LOINC,
    "urn:oid:2.16.840.1.113883.6.88": RXNORM,
    "http://www.nlm.nih.gov/research/umls/rxnorm": RXNORM,
    "urn:oid:2.16.840.1.113883.6.12": CPT,
    "http://www.ama-assn.org/go/cpt": CPT,
}


def canonical_system(system: str | None) -> str | None:
    """The canonical URI for a system as an EHR wrote it (https, trailing slash, OID, SNOMED edition URI)."""
    if not system:
        return None
    text = system.strip()
    lowered = text.lower().rstrip("/")
    if lowered.startswith("https://"):
        lowered = "http://" + lowered[len("https://") :]
    if lowered.startswith("http://snomed.info/sct"):
        return SNOMED
    return _ALIASES.get(lowered, text)


def normalise_code(system: str | None, code: str) -> str:
    """ICD codes lose the dot and gain upper case (`c79.51` = `C7951`); other codes are only trimmed."""
    code = code.strip()
    if system in ICD_SYSTEMS:
        return code.replace(".", "").replace(" ", "").upper()
    return code


def coding_key(system: str | None, code: str | None) -> tuple[str, str] | None:
    """The (system, code) key used in every value-set lookup, or None for a coding that cannot match."""
    canonical = canonical_system(system)
    if canonical is None or not code or not code.strip():
        return None
    return canonical, normalise_code(canonical, code)
