"""The invariants of the CDS Hooks 3.0 logical models (cds-resp-*, cds-fb-*, cds-r-*), read from their FSH as HL7
published them and evaluated with FHIRPath where the models bind them.

conftest.py runs them on every CDS Hooks exchange the test suite makes: each response the service gives must meet
cds-resp-*, and each feedback or request it accepts must meet cds-fb-* and cds-r-* (it must have refused it
otherwise). A warning-level invariant binds the service as strictly as an error on what it sends.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import fhirpathpy

from tests.helpers import CDSHOOKS

FSH = CDSHOOKS / "logical-models-3.0-ballot" / "fsh"
_INVARIANT = re.compile(r"^Invariant:\s*(\S+)", re.MULTILINE)
_DESCRIPTION = re.compile(r'^Description:\s*"(.*)"\s*$', re.MULTILINE)
_FIELD = re.compile(r'^\*\s*(severity|expression)\s*=\s*"?#?(.*?)"?\s*$', re.MULTILINE)
_LOGICAL = re.compile(r"^Logical:\s*(\S+)", re.MULTILINE)
_OBEYS = re.compile(r"^\*\s*(\S*?)\s*obeys\s+(.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Invariant:
    key: str
    description: str
    severity: str
    expression: str
    holds: Callable[[Any], list[Any]]


@cache
def invariants() -> dict[str, Invariant]:
    found: dict[str, Invariant] = {}
    for path in sorted((FSH / "invariants").glob("*.fsh")):
        text = path.read_text(encoding="utf-8")
        key = _INVARIANT.search(text)
        assert key is not None, path
        fields = dict(_FIELD.findall(text))
        description = _DESCRIPTION.search(text)
        assert description is not None, path
        expression = fields["expression"]
        found[key.group(1)] = Invariant(
            key.group(1), description.group(1), fields["severity"], expression, fhirpathpy.compile(expression)
        )
    return found


@cache
def bindings() -> dict[str, tuple[tuple[str, str], ...]]:
    """Logical model -> (element path, invariant key) for each `obeys` in its FSH (`""` is the model itself)."""
    found: dict[str, tuple[tuple[str, str], ...]] = {}
    for path in sorted((FSH / "logicals").glob("*.fsh")):
        text = path.read_text(encoding="utf-8")
        model = _LOGICAL.search(text)
        if model is None:
            continue
        pairs = [(element, key.strip()) for element, keys in _OBEYS.findall(text) for key in keys.split(" and ")]
        if pairs:
            found[model.group(1)] = tuple(pairs)
    return found


def _instances(body: Any, path: str) -> list[Any]:
    """The values at a dotted element path, through arrays: `cards.suggestions` is every suggestion of every card."""
    nodes = [body]
    for part in [p for p in path.split(".") if p]:
        step: list[Any] = []
        for node in nodes:
            value = node.get(part) if isinstance(node, dict) else None
            step += value if isinstance(value, list) else [] if value is None else [value]
        nodes = step
    return nodes


def violations(model: str, body: Any) -> list[str]:
    """Each invariant of the model that does not hold, as `key at path: description`."""
    problems = []
    for path, key in bindings()[model]:
        invariant = invariants()[key]
        for node in _instances(body, path):
            if invariant.holds(node) == [False]:
                problems.append(f"{key} at {path or model}: {invariant.description}")
    return problems


def check_exchange(method: str, path: str, sent: Any, status: int, answer: Any) -> list[str]:
    """The invariants a CDS Hooks exchange broke: in the answer to a service call, or in a request or feedback
    the service accepted (2xx) although it breaks the model."""
    if method != "POST" or "/cds-services/" not in path or not 200 <= status < 300:
        return []
    if path.endswith("/feedback"):
        items = sent.get("feedback") if isinstance(sent, dict) else None
        return [p for item in items or [] for p in violations("CDSHooksFeedback", {"feedback": [item]})]
    request = [p for p in violations("CDSHooksRequest", sent) if "cds-r-2" not in p]  # a SHOULD of the client
    return request + (violations("CDSHooksResponse", answer) if isinstance(answer, dict) else [])
