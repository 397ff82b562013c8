"""Prefetch as the spec defines it: per key, a resource, a searchset Bundle, null (no data) or absent.

Absent and an OperationOutcome (the EHR's query failed) both mean "not prefetched": the data must be
fetched from the FHIR server, or the call answered 412.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from service.errors import BadRequest
from service.fhir.validate import InputIssue

_TOKEN = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")


@dataclass
class PrefetchResult:
    resources: list[dict[str, Any]] = field(default_factory=list)
    aliases: set[str] = field(default_factory=set)
    missing: list[str] = field(default_factory=list)
    problems: list[InputIssue] = field(default_factory=list)  # malformed parts, named in the answer's issues
    read: list[str] = field(default_factory=list)  # the keys whose resources are in `resources`


def render_query(template: str, context: Mapping[str, Any]) -> str | None:
    """Fill a prefetch template's tokens from the hook context; None when a token has no value."""
    failed = False

    def fill(match: re.Match[str]) -> str:
        nonlocal failed
        name = match.group(1)
        user_type, _, user_id = str(context.get("userId", "")).partition("/")
        value: Any = None
        if name.startswith("context."):
            value = context.get(name.removeprefix("context."))
        elif name == f"user{user_type}Id" and user_type in (
            "Practitioner",
            "PractitionerRole",
            "Patient",
            "RelatedPerson",
        ):
            value = user_id
        if not isinstance(value, str) or not value:
            failed = True
            return ""
        return value

    query = _TOKEN.sub(fill, template)
    return None if failed else query


Keep = Callable[[dict[str, Any]], bool]


def resources_of(
    value: dict[str, Any], key: str, keep: Keep | None = None
) -> tuple[list[dict[str, Any]], set[str], list[InputIssue]]:
    """The resources in one prefetch value (a resource or a Bundle), the fullUrls of any Patient entries, and the
    entries that could not be read (named, never dropped in silence). Raises Unreadable when the Bundle's entries
    cannot be read at all. `keep`, when given, leaves out the resources no rule can read as the entries are read
    (a Patient always stays: its birth date and fullUrl count), so a chart's thousand lab results never reach a
    list."""
    if value.get("resourceType") != "Bundle":
        kept = keep is None or value.get("resourceType") == "Patient" or keep(value)
        return ([value] if kept else []), set(), []
    source = f"prefetch.{key}"
    resources: list[dict[str, Any]] = []
    aliases: set[str] = set()
    problems: list[InputIssue] = []
    entries = value.get("entry", [])
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise Unreadable(InputIssue(source, "Bundle.entry", "must be an array", "set aside"))
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            where = f"Bundle.entry[{i}]"
            problems.append(InputIssue(source, where, "an entry without a resource object", "set aside"))
            continue
        kind = resource.get("resourceType")
        if not isinstance(kind, str):
            where = f"Bundle.entry[{i}].resource.resourceType"
            problems.append(InputIssue(source, where, "must be a string: the resource is not read", "set aside"))
            continue
        search = entry.get("search")
        if search is not None and not isinstance(search, dict):
            where = f"Bundle.entry[{i}].search"
            problems.append(InputIssue(source, where, "must be an object: the entry is read", "counted"))
            search = None
        if kind == "OperationOutcome" or (search is not None and search.get("mode") == "outcome"):
            continue
        if kind == "Patient":
            if isinstance(entry.get("fullUrl"), str):
                aliases.add(entry["fullUrl"])
        elif keep is not None and not keep(resource):
            continue
        resources.append(resource)
    return resources, aliases, problems


class Unreadable(Exception):
    """A prefetch value whose content cannot be read at all: the key counts as not prefetched."""

    def __init__(self, issue: InputIssue) -> None:
        super().__init__(issue.message)
        self.issue = issue


def read_prefetch(
    templates: Mapping[str, str], prefetch: Mapping[str, Any] | None, keep: Keep | None = None
) -> PrefetchResult:
    """Split the EHR's prefetch into usable resources (those `keep` accepts, when given) and the template keys
    still missing."""
    result = PrefetchResult()
    sent = prefetch or {}
    for key in templates:
        if key not in sent:
            result.missing.append(key)
            continue
        value = sent[key]
        if value is None:
            continue
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            raise BadRequest(f"prefetch key {key!r} must be a FHIR resource, a Bundle or null")
        if value["resourceType"] == "OperationOutcome":
            result.missing.append(key)
            continue
        try:
            resources, aliases, problems = resources_of(value, key, keep)
        except Unreadable as error:  # never read as "no data": fetched instead, or a 412
            result.problems.append(error.issue)
            result.missing.append(key)
            continue
        result.resources.extend(resources)
        result.aliases.update(aliases)
        result.problems.extend(problems)
        result.read.append(key)
    return result
