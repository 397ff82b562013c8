"""A hospital's own codes, added to the rule set's value sets without forking `rules/`.

The site folder (`MSCC_SITE_DIR`) holds one `site.yaml`:

    site: Example General Hospital
    valuesets:
      spine-imaging-not-whole-spine-mri:          # a value set of rules/valuesets/
        - system: http://www.ama-assn.org/go/cpt
          source: radiology order catalogue, 2026-11
          concepts:
            - {code: "72131", display: CT lumbar spine without contrast}

It is validated like the rules (file, field and message for every problem), and a site can only *add* codes: it
can never remove one, so no local change can silence a warning sign the shipped rules recognise. Its content is
part of the rule-set revision, so every card and decision row names what answered.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from service.engine.codecheck import WrittenCode, code_problems
from service.engine.terminology import IcdEditions
from service.engine.valuesets import ValueSetDef
from service.errors import field_problems, validation_errors
from service.fhir.codes import coding_key

SITE_FILE = "site.yaml"
_URI = r"^(https?://\S+|urn:\S+)$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SiteConcept(_Strict):
    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    display: str = Field(min_length=1, max_length=300)


class SiteInclude(_Strict):
    system: str = Field(pattern=_URI, description="the code system's URI (e.g. http://www.ama-assn.org/go/cpt)")
    source: str = Field(min_length=3, description="where these codes come from, for the next reviewer")
    concepts: list[SiteConcept] = Field(min_length=1)


ValueSetId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$")]


class SiteFile(_Strict):
    site: str = Field(min_length=1, max_length=120, description="the hospital or site, shown in /rules")
    local_systems: list[Annotated[str, StringConstraints(pattern=_URI)]] = Field(
        default_factory=list,
        description="the hospital's own code systems (URIs): only these may appear besides SNOMED CT, LOINC, "
        "ICD-10-CM, WHO ICD-10, RxNorm and CPT",
    )
    valuesets: dict[
        Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$")],
        Annotated[list[SiteInclude], Field(min_length=1)],
    ] = Field(min_length=1, description="value set id (a file in rules/valuesets/) -> the codes to add")


@dataclass(frozen=True)
class Site:
    name: str
    revision: str
    path: Path
    additions: dict[str, int]  # value set id -> codes added

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.revision}"


Problem = tuple[str, str]  # (field, message)


def read_site(folder: Path) -> tuple[SiteFile | None, str, list[Problem]]:
    """The parsed site file, its content hash, and its problems (field, message)."""
    from service.engine.yamlfile import load_yaml  # YAML errors carry the line

    path = folder / SITE_FILE
    if not path.is_file():
        other = sorted(p.name for p in folder.glob("*.y*ml")) if folder.is_dir() else []
        hint = f" (found {', '.join(other)}: the file must be named {SITE_FILE})" if other else ""
        return None, "", [("", f"missing: the site folder needs {SITE_FILE}{hint}")]
    text = path.read_bytes()
    try:
        parsed = SiteFile.model_validate(load_yaml(path))
    except ValidationError as error:
        return None, "", list(field_problems(validation_errors(error), whole="", fhirpath=True))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        return None, "", [(where, f"not valid YAML: {getattr(error, 'problem', None) or error}")]
    except OSError as error:
        return None, "", [("", f"cannot be read: {error.strerror}")]
    return parsed, hashlib.sha256(text).hexdigest()[:12], []


def apply_site(
    folder: Path, valuesets: dict[str, ValueSetDef], editions: IcdEditions | None
) -> tuple[Site | None, dict[str, ValueSetDef], list[Problem]]:
    """The value sets with the site's codes added (new objects: the parsed files are cached and shared). Every
    system must be a known one or one of the site's `local_systems`, and every code of a known system must exist
    (engine/codecheck.py), as in the shipped value sets; `editions` None skips that (reading a rule set to compare)."""
    parsed, revision, problems = read_site(folder)
    if parsed is None:
        return None, valuesets, problems
    local = frozenset(parsed.local_systems)
    for vs_id, includes in parsed.valuesets.items():
        if editions is None or vs_id not in valuesets:
            continue  # codes are checked only for a value set that exists, and not when reading to compare
        for i, include in enumerate(includes):
            where = f"valuesets.{vs_id}[{i}]"
            written = tuple(
                WrittenCode(f"{where}.concepts[{j}].code", f"{where}.system", include.system, concept.code)
                for j, concept in enumerate(include.concepts)
            )
            problems += code_problems(written, editions, local)
    widened = dict(valuesets)
    additions: dict[str, int] = {}
    for vs_id, includes in parsed.valuesets.items():
        if vs_id not in valuesets:
            known = ", ".join(sorted(valuesets))
            problems.append((f"valuesets.{vs_id}", f"no value set {vs_id!r} in rules/valuesets/ (one of: {known})"))
            continue
        added = set()
        for include in includes:
            for concept in include.concepts:
                key = coding_key(include.system, concept.code)
                if key is not None:
                    added.add(key)
        base = valuesets[vs_id]
        widened[vs_id] = dataclasses.replace(base, codes=base.codes | added)
        additions[vs_id] = len(added - base.codes)
    if problems:
        return None, valuesets, problems
    return Site(parsed.site, revision, folder / SITE_FILE, additions), widened, []
