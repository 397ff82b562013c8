"""What a `fhirAuthorization` lets the service fetch: SMART App Launch scopes, v1 and v2, read once per call.

CDS Hooks 2.0 passes SMART v1 scopes (`patient/Observation.read`, `user/*.*`); CDS Hooks 3.0 moves to SMART App
Launch 2 (`patient/Observation.rs`, `system/Condition.s?category=problem-list-item`). A fetch the token does not
cover would only be refused by the FHIR server (a 403 read as "the FHIR server answered"), so the keys it does not
cover are named before anything is fetched: a required one is a 412 that says which scope is missing, an optional
one is named in the response as unavailable. A v2 scope narrowed by a query still lets the search run, and the
keys it narrows are named (the server may return only part of what the rules read).

A token issued for another patient than the call's (`fhirAuthorization.patient` differs from `context.patientId`)
is never used: the call is answered from its prefetch alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.([a-z*]+)(?:\?(.+))?$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


@dataclass(frozen=True)
class Grant:
    """One resource scope: its context, its resource type (`*`: all), the interactions it allows (letters of
    `cruds`), and the query a v2 scope narrows it to."""

    context: str
    resource_type: str
    interactions: frozenset[str]
    narrowed_to: str | None = None

    def covers(self, resource_type: str, interaction: str) -> bool:
        return self.resource_type in ("*", resource_type) and interaction in self.interactions


def parse_scopes(scope: str) -> list[Grant]:
    """The resource scopes of a scope string; anything else (`launch`, `openid`, `fhirUser`, a malformed scope) grants
    no resource access and is skipped."""
    grants = []
    for word in scope.split():
        match = _SCOPE.match(word)
        if match is None:
            continue
        context, resource_type, permissions, query = match.groups()
        letters = _V1.get(permissions)
        if letters is None:  # SMART v2: letters of c, r, u, d, s, in that order
            if not re.fullmatch(r"c?r?u?d?s?", permissions):
                continue
            letters = permissions
        grants.append(Grant(context, resource_type, frozenset(letters), query))
    return grants


def interaction_of(query: str) -> tuple[str, str]:
    """(resource type, `r` for a read by id or `s` for a search) of a prefetch query."""
    path = query.split("?", 1)[0].strip("/")
    resource_type, _, resource_id = path.partition("/")
    return resource_type, ("r" if resource_id and "?" not in query else "s")


@dataclass(frozen=True)
class Coverage:
    """Per prefetch key: not covered (the scope it would need), or narrowed (the grant's query)."""

    missing: dict[str, str]
    narrowed: dict[str, str]


def coverage(scope: str, queries: dict[str, str]) -> Coverage:
    grants = parse_scopes(scope)
    missing: dict[str, str] = {}
    narrowed: dict[str, str] = {}
    for key, query in queries.items():
        resource_type, interaction = interaction_of(query)
        covering = [g for g in grants if g.covers(resource_type, interaction)]
        if not covering:
            needed = "read" if interaction == "r" else "search"
            missing[key] = f"{needed} of {resource_type} (patient/{resource_type}.{interaction} or .read)"
        elif all(g.narrowed_to for g in covering):
            narrowed[key] = "; ".join(sorted({str(g.narrowed_to) for g in covering}))
    return Coverage(missing, narrowed)
