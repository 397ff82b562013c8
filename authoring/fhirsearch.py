"""The FHIR R4 search an EHR runs for a prefetch query, for the parameters our prefetch queries use.

Used where we play the EHR: building example requests, the loopback FHIR server of the tests, and the benchmark
that measures what the filters save on the real records. Parameters: `patient` (or `subject`), `code`,
`combo-code` (an Observation's code or a component's) and `category` as tokens (`system|code`, `code`, comma for
"or"), and `:not` on them. An unknown parameter is
refused (a strict server's 400): a query we generate must never be answered as if it were another.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from service.cdshooks.prefetch import render_query
from service.fhir.codes import canonical_system, normalise_code

_TOKEN_PARAMETERS = {"code": ("code",), "category": ("category",), "combo-code": ("code", "component.code")}


class UnsupportedSearch(ValueError):
    """A search parameter this server does not know: answered 400, as a strict FHIR server does."""


def _codings(value: Any) -> list[dict[str, Any]]:
    concepts = value if isinstance(value, list) else [value]
    return [c for concept in concepts if isinstance(concept, dict) for c in concept.get("coding") or []]


def _matches_token(codings: list[dict[str, Any]], wanted: str) -> bool:
    for token in wanted.split(","):
        system, bar, code = token.rpartition("|")
        for coding in codings:
            if not isinstance(coding, dict) or coding.get("code") is None:
                continue
            if bar and canonical_system(system) != canonical_system(coding.get("system")):
                continue
            system_of = canonical_system(coding.get("system"))
            if normalise_code(system_of, str(coding["code"])) == normalise_code(system_of, code):
                return True
    return False


def _at(resource: dict[str, Any], path: str) -> Any:
    """The values at a dotted path (`component.code`: the code of every component)."""
    values: list[Any] = [resource]
    for step in path.split("."):
        values = [v.get(step) for v in values if isinstance(v, dict)]
        values = [x for v in values for x in (v if isinstance(v, list) else [v]) if x is not None]
    return values


def matches(resource: dict[str, Any], query: str, *, check_patient: bool = True) -> bool:
    """Whether `resource` is in the result of `Type?params` (`check_patient` False: whoever its subject is, for
    example Bundles that hold another patient's resource on purpose)."""
    kind, _, params = query.partition("?")
    if resource.get("resourceType") != kind:
        return False
    for name, value in parse_qsl(params, keep_blank_values=True):
        field, _, modifier = name.partition(":")
        if field in ("patient", "subject"):
            if not check_patient:
                continue
            reference = (resource.get("subject") or resource.get("patient") or {}).get("reference", "")
            if reference not in (f"Patient/{value}", value):
                return False
        elif field in _TOKEN_PARAMETERS and modifier in ("", "not"):
            codings = [c for path in _TOKEN_PARAMETERS[field] for c in _codings(_at(resource, path))]
            if _matches_token(codings, value) == (modifier == "not"):
                return False
        else:
            raise UnsupportedSearch(f"search parameter {name!r} is not supported")
    return True


def search(resources: list[dict[str, Any]], query: str, *, check_patient: bool = True) -> list[dict[str, Any]]:
    return [r for r in resources if matches(r, query, check_patient=check_patient)]


def prefetch_as_ehr(
    templates: dict[str, str], resources: list[dict[str, Any]], patient_id: str, *, check_patient: bool = True
) -> dict[str, list[dict[str, Any]]]:
    """What an EHR honouring the queries sends for each prefetch key, from all of the patient's resources."""
    sent = {}
    for key, template in templates.items():
        query = render_query(template, {"patientId": patient_id})
        if query is not None:
            sent[key] = search(resources, query, check_patient=check_patient)
    return sent
