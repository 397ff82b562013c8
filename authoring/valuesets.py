"""Build the value sets that come from published code lists, by review rules written down here.

The lists in `../shared/clinical/published-codes/` were made for other purposes (US quality measures, UK research
cohorts, an international free set): they are read, never pasted. Each code gets a verdict from the rules below,
kept codes go into `rules/valuesets/<id>.json` (grouped by the list they came from, each group naming its source),
and every excluded code is listed with its reason in `rules/valuesets/review/<id>-excluded.csv`, so a clinical
reviewer can read what was left out and why. `python -m authoring valuesets` rebuilds them; a test checks that
the committed files are what the rules give.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authoring.published import PublishedCode, read_list
from service.config import PROJECT_ROOT
from service.fhir.codes import LOINC, SNOMED

VALUESETS = PROJECT_ROOT / "rules" / "valuesets"
REVIEW = VALUESETS / "review"
SOURCE_EXTENSION = "https://mscc-cds.example.org/StructureDefinition/valueset-source"
BASE_URL = "https://mscc-cds.example.org/ValueSet/"

Verdict = Callable[[PublishedCode], str | None]  # None: keep; else the reason it is left out

# --- cancer (SNOMED CT) -------------------------------------------------------------------------------------------

_MALIGNANT_WORDS = re.compile(
    r"malignan|carcinoma|sarcoma|lymphoma|leuka?emi|myeloma|melanoma|metasta|blastoma|cancer|mesothelioma"
    r"|seminoma|hodgkin|plasmacytoma|chordoma|mycosis fungoides|s[eé]zary|carcinoid|waldenstr|germ cell",
    re.IGNORECASE,
)
# Malignancies whose names carry none of the words above (ICD-10 classes each in C00-C97): reviewed one by one.
_MALIGNANT_NAMES = re.compile(
    r"hypernephroma|pancoast tumou?r|paget's disease of (nipple|vulva)|extramammary paget|perianal paget"
    r"|invasive vulval paget|burkitt|krukenberg|klatskin|chloroma|richter's syndrome|secondary neoplasm"
    r"|secondary nodes|letterer-siwe|heavy chain disease|immunoproliferative small intestinal|acute myelofibrosis"
    r"|langerhans cell histiocytosis, disseminated|histiocytic medullary reticulosis|adamantinoma"
    r"|anaplastic (astrocytoma|glioma)|glioma|ependymoma|oligodendroglioma|dysgerminoma|endodermal sinus tumou?r"
    r"|neuroectodermal tumou?r|neuroepithelioma|non-?small cell neoplasm of lung|small cell neoplasm"
    r"|pinealoma|microglioma|pagetoid reticulosis|stewart-treves|lethal midline granuloma|rhabdoid tumou?r"
    r"|astrocytoma|paget disease of anal canal|pancoast's syndrome",
    re.IGNORECASE,
)
_CANCER_EXCLUSIONS: list[tuple[str, re.Pattern[str]]] = [
    ("in situ (not invasive)", re.compile(r"in situ|intraepithelial", re.IGNORECASE)),
    (
        "benign or uncertain behaviour (ICD D10-D48)",
        re.compile(
            r"benign|uncertain|borderline|unknown behaviou?r|low malignant potential|pre-?malignant|pilocytic",
            re.IGNORECASE,
        ),
    ),
    (
        "not a diagnosis of cancer in this person (suspicion, family history, predisposition)",
        re.compile(
            r"suspected|family history|at risk|risk of|no history|referral|fear of|carrier|predisposition"
            r"|susceptibility|hereditary nonpolyposis|lynch syndrome|hereditary breast and ovarian cancer syndrome"
            r"|neoplasia syndrome|tumou?r syndrome",
            re.IGNORECASE,
        ),
    ),
    (
        "myelodysplastic or myeloproliferative, without leukaemia (ICD D45-D47)",
        re.compile(
            r"^(?!.*leuka?emi).*(myelodysplastic|myeloproliferative|polycyth[a]?emia|thrombocyth[a]?emia"
            r"|refractory an[a]?emia|refractory cytopenia|myelosclerosis)",
            re.IGNORECASE,
        ),
    ),
    (
        "non-melanoma skin cancer (ICD C44)",
        re.compile(r"basal cell|rodent ulcer|squamous cell carcinoma of skin|keratinocyt|bowen", re.IGNORECASE),
    ),
]
_SKIN = re.compile(r"\bskin\b", re.IGNORECASE)
_NOT_KERATINOCYTE_SKIN = re.compile(r"melanoma|merkel|kaposi|lymphoma|sarcoma|leuk|mycosis|s[eé]zary", re.IGNORECASE)
_HISTORY = re.compile(r"^(personal )?history of ", re.IGNORECASE)


def cancer_verdict(code: PublishedCode) -> str | None:
    """Keep invasive malignancies (primary, secondary, haematological) and histories of them; nothing else."""
    if code.system != SNOMED:
        return "not SNOMED CT"
    if not code.active:
        return "inactive concept (the source marks it so)"
    tag = code.semantic_tag
    is_history = tag == "situation" and bool(_HISTORY.search(code.display))
    if tag != "disorder" and not is_history:
        return f"semantic tag ({tag or 'none'}) is not a diagnosis: only (disorder) and history (situation) count"
    for reason, pattern in _CANCER_EXCLUSIONS:
        if pattern.search(code.display):
            return reason
    if _SKIN.search(code.display) and not _NOT_KERATINOCYTE_SKIN.search(code.display):
        return "non-melanoma skin cancer (ICD C44)"
    if not (_MALIGNANT_WORDS.search(code.display) or _MALIGNANT_NAMES.search(code.display)):
        return "the name states no malignancy"
    return None


# --- spine imaging (LOINC) ----------------------------------------------------------------------------------------

_REGIONS = ("cervical", "thoracic", "lumbar")
_REGION_WORD = re.compile(r"cervical|thoracic|lumbar|sacr|coccy", re.IGNORECASE)


def _modality(code: PublishedCode) -> str:
    return code.display.split(" ", 1)[0]


def is_whole_spine_mri(code: PublishedCode) -> bool:
    """An MR study that names the cervical, thoracic and lumbar spine."""
    text = code.display.lower()
    return _modality(code) == "MR" and all(region in text for region in _REGIONS)


def regional_spine_imaging_verdict(code: PublishedCode) -> str | None:
    """Keep plain X-ray, CT and regional MRI of the spine: the studies a whole-spine MRI should replace."""
    if code.system != LOINC:
        return "not LOINC"
    modality = _modality(code)
    if modality not in ("XR", "CT", "MR"):
        return f"modality {modality} (fluoroscopy, angiography) is not a study that looks for metastases"
    if is_whole_spine_mri(code):
        return "a whole-spine MRI (valueset whole-spine-mri)"
    if modality == "MR" and not _REGION_WORD.search(code.display):
        return "MRI of the spine with no region stated: neither whole-spine nor known to be regional"
    return None


# --- building -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generated:
    """A value set built from published lists by one verdict."""

    id: str
    name: str
    title: str
    description: str
    system: str
    lists: tuple[str, ...]
    verdict: Verdict


GENERATED = (
    Generated(
        "cancer-snomed",
        "CancerSnomed",
        "Malignant neoplasm, current or past (SNOMED CT)",
        "Invasive malignancies in SNOMED CT, primary, secondary and haematological, and histories of them, reviewed "
        "from published lists by the rules in authoring/valuesets.py (cancer_verdict). Left out, each with its "
        "reason in review/cancer-snomed-excluded.csv: in situ, benign and uncertain-behaviour neoplasms, "
        "myelodysplastic and myeloproliferative disorders, non-melanoma skin cancer, inactive concepts, and "
        "anything that is not a diagnosis (morphologies, procedures, suspected or family history). The lists' "
        "national-extension codes are kept where the name passes; a site that has a terminology server can "
        "replace this list by an is-a 363346000 expansion (rules/README.md).",
        SNOMED,
        (
            "vsac-cancer-2.16.840.1.113883.3.526.3.1010.csv",
            "opensafely-cancer-excluding-lung-and-haematological-snomed.csv",
            "opensafely-lung-cancer-snomed.csv",
            "opensafely-haematological-cancer-snomed.csv",
            "snomed-gps-20200930-cancer-spine-neuro-subset.csv",
        ),
        cancer_verdict,
    ),
    Generated(
        "spine-imaging-loinc-regional",
        "SpineImagingLoincRegional",
        "Plain X-ray, CT and regional MRI of the spine (LOINC)",
        "LOINC spine studies other than a whole-spine MRI: plain X-ray, CT and MRI of one or two regions, from the "
        "spine rows of VSAC XRay Study, by regional_spine_imaging_verdict in authoring/valuesets.py. Left out with "
        "reasons in review/spine-imaging-loinc-regional-excluded.csv: whole-spine MRI, MRI of the spine with no "
        "region stated, fluoroscopy and angiography.",
        LOINC,
        ("vsac-xray-study-spine-rows-2.16.840.1.113883.3.464.1003.198.12.1034.csv",),
        regional_spine_imaging_verdict,
    ),
)


def _source_label(code: PublishedCode) -> str:
    return f"{code.source_valueset}; {code.source_file}"


def build(spec: Generated, read: Callable[[str], list[PublishedCode]] = read_list) -> tuple[dict[str, Any], str]:
    """The ValueSet JSON and the review CSV of exclusions for one generated value set."""
    kept: dict[str, PublishedCode] = {}
    excluded: dict[str, tuple[PublishedCode, str]] = {}
    for name in spec.lists:
        for code in read(name):
            if code.system != spec.system:
                continue  # the list's other systems are other value sets' business (ICD: by is-a filters)
            reason = spec.verdict(code)
            if reason is None:
                kept.setdefault(code.code, code)
            elif code.code not in excluded:
                excluded[code.code] = (code, reason)
    groups: dict[str, list[PublishedCode]] = {}
    for code in kept.values():
        groups.setdefault(code.file, []).append(code)
    include = [
        {
            "extension": [{"url": SOURCE_EXTENSION, "valueString": _source_label(codes[0])}],
            "system": codes[0].system,
            "concept": [{"code": c.code, "display": c.display} for c in codes],
        }
        for codes in groups.values()
    ]
    valueset = {
        "resourceType": "ValueSet",
        "id": spec.id,
        "url": BASE_URL + spec.id,
        "version": "1.0.0",
        "name": spec.name,
        "title": spec.title,
        "status": "active",
        "description": spec.description,
        "compose": {"include": include},
    }
    review = io.StringIO()
    writer = csv.writer(review, lineterminator="\n")
    writer.writerow(["code", "display", "reason", "list"])
    for key, (row, reason) in sorted(excluded.items()):
        if key not in kept:
            writer.writerow([key, row.display, reason, row.file])
    return valueset, review.getvalue()


def render_valueset(valueset: dict[str, Any]) -> str:
    return json.dumps(valueset, indent=2, ensure_ascii=False) + "\n"


def outputs(folder: Path = VALUESETS) -> dict[Path, str]:
    """Every generated file and its content."""
    files: dict[Path, str] = {}
    for spec in GENERATED:
        valueset, review = build(spec)
        files[folder / f"{spec.id}.json"] = render_valueset(valueset)
        files[folder / "review" / f"{spec.id}-excluded.csv"] = review
    return files


def write(folder: Path = VALUESETS) -> list[Path]:
    """Write the generated value sets and their review files; return the paths that changed."""
    changed = []
    for path, content in outputs(folder).items():
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            changed.append(path)
    return changed
