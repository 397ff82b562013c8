"""Fill `ValueSet.expansion` from a terminology server's `$expand`, for value sets defined by `is-a` on SNOMED CT.

The service never calls a terminology server while it answers: a site with one runs
`python -m authoring rules expand --server URL`, reviews the change with `make rules-diff`, and commits the file.
Only the includes the service cannot read itself (`is-a` on SNOMED CT, LOINC, ...) are sent to the server; the
rest of `compose` (concept lists, ICD is-a, other value sets) the service reads directly. `expansion.parameter`
records the server, the time and which includes it expanded, so the expansion can be traced and renewed.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from service.engine.valuesets import parse_valueset
from service.errors import ValueSetError
from service.fhir.codes import ICD_SYSTEMS, canonical_system

PAGE = 1000
MAX_PAGES = 500  # a bound on every loop: 500,000 codes is beyond any value set a rule reads


class ExpandError(Exception):
    """The server could not expand a value set; nothing was written for it."""


@dataclass(frozen=True)
class Expanded:
    path: Path
    codes: int


def _needs_server(part: dict[str, Any]) -> bool:
    system = canonical_system(part.get("system"))
    return bool(part.get("filter")) and system not in ICD_SYSTEMS


def intensional_parts(valueset: dict[str, Any]) -> list[int]:
    """Indexes of the `compose.include` entries only a terminology server can expand."""
    return [i for i, part in enumerate(valueset.get("compose", {}).get("include", [])) if _needs_server(part)]


def _request_body(valueset: dict[str, Any], parts: list[int], offset: int) -> dict[str, Any]:
    sent = copy.deepcopy(valueset)
    sent.pop("expansion", None)
    includes = sent["compose"]["include"]
    sent["compose"] = {"include": [includes[i] for i in parts]}
    excludes = [
        e
        for e in valueset["compose"].get("exclude", [])
        if e.get("system") and canonical_system(e.get("system")) not in ICD_SYSTEMS
    ]
    if excludes:
        sent["compose"]["exclude"] = excludes
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "valueSet", "resource": sent},
            {"name": "offset", "valueInteger": offset},
            {"name": "count", "valueInteger": PAGE},
        ],
    }


def _expand_pages(client: httpx.Client, server: str, valueset: dict[str, Any], parts: list[int]) -> dict[str, Any]:
    contains: list[dict[str, Any]] = []
    first: dict[str, Any] | None = None
    for _ in range(MAX_PAGES):
        try:
            answer = client.post(f"{server}/ValueSet/$expand", json=_request_body(valueset, parts, len(contains)))
        except httpx.HTTPError as error:
            raise ExpandError(f"{server} could not be reached: {type(error).__name__}") from None
        if answer.status_code != 200:
            raise ExpandError(f"{server} answered {answer.status_code} to $expand")
        try:
            expansion = answer.json()["expansion"]
            page = [c for c in expansion.get("contains", []) if c.get("system") and c.get("code")]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ExpandError(f"{server} did not answer with a ValueSet expansion") from None
        first = first or expansion
        contains += page
        total = expansion.get("total")
        if not page or (isinstance(total, int) and len(contains) >= total):
            break
    else:
        raise ExpandError(f"{server} gave more than {MAX_PAGES} pages; stopped")
    assert first is not None
    return {**first, "contains": contains}


def expand_file(path: Path, server: str, client: httpx.Client, now: datetime) -> Expanded | None:
    """Expand one value-set file in place (written only when the result validates); None when it needs no server."""
    valueset = json.loads(path.read_text(encoding="utf-8"))
    parts = intensional_parts(valueset)
    if not parts:
        return None
    found = _expand_pages(client, server, valueset, parts)
    if not found["contains"]:
        raise ExpandError(f"{server} expanded {path.name} to no codes; nothing written")
    contains = [{k: c[k] for k in ("system", "version", "code", "display") if c.get(k)} for c in found["contains"]]
    expansion = {
        "identifier": found.get("identifier") or f"urn:uuid:{uuid.uuid4()}",
        "timestamp": found.get("timestamp") or now.isoformat(timespec="seconds"),
        "total": len(contains),
        "parameter": [
            {"name": "used-server", "valueUri": server},
            {"name": "expanded-at", "valueDateTime": now.isoformat(timespec="seconds")},
            *({"name": "expanded-include", "valueString": f"compose.include[{i}]"} for i in parts),
            *(p for p in found.get("parameter", []) if isinstance(p, dict) and p.get("name") != "used-server"),
        ],
        "contains": contains,
    }
    updated = {**valueset, "expansion": expansion}
    try:
        parse_valueset(updated, path.stem)
    except ValueSetError as error:
        raise ExpandError(f"{path.name}: the expansion does not validate: {error}") from None
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(updated, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return Expanded(path, len(contains))


def expand_all(
    valuesets: Path, server: str, token: str | None = None, only: str | None = None, timeout: float = 60.0
) -> list[Expanded]:
    """Expand every value set that needs a server (or only the named one); raise ExpandError on the first failure."""
    headers = {"Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    now = datetime.now(UTC)
    done = []
    with httpx.Client(headers=headers, timeout=timeout, follow_redirects=False) as client:
        for path in sorted(valuesets.glob("*.json")):
            if only is not None and path.stem != only:
                continue
            result = expand_file(path, server.rstrip("/"), client, now)
            if result is not None:
                done.append(result)
    return done
