"""The service's error tree. Each error knows its HTTP status; `service.api.errors` maps them to answers.

ServiceError
├── BadRequest (400)            the request breaks CDS Hooks (malformed JSON, wrong hook, bad context)
│   ├── UnknownRule             /evaluate?rule= names no rule version
│   └── UnknownSuggestions      feedback accepts a suggestion the card did not offer
├── Unauthorized (401)          missing or invalid JWT, or the operator token is missing
├── NotFound (404)              unknown service
│   └── UnknownCards            feedback names cards this service did not return
├── PreconditionFailed (412)    required FHIR data neither prefetched nor fetchable
│   └── FetchFailed             the FHIR server's answer to named prefetch keys could not be used
│       └── SearchRefused       the FHIR server refused a search as asked (a filter it does not support)
├── PayloadTooLarge (413)       body over the configured limit
├── InvalidFhir (422)           /evaluate input that is not valid FHIR (answered as an OperationOutcome)
├── RuleSetRefused (422)        POST /rules/reload: the changed rule set does not validate (the old one serves on)
└── ServiceUnavailable (503)    nothing was done; the same request may succeed later

RuleSetInvalid                  a rule set that does not validate: never served, start-up stops
ConfigurationError              a setting or configured file that cannot work: start-up stops with one line
ValueSetError (ValueError)      one value set that cannot be served (becomes a RuleProblem of RuleSetInvalid)

`field_errors` is the one way a pydantic validation error becomes text: location and message, never the input
value (it may be patient data or a secret).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


class ServiceError(Exception):
    status_code = 500
    code = "error"

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class BadRequest(ServiceError):
    status_code = 400
    code = "bad_request"


class Unauthorized(ServiceError):
    """`reason` is a fixed word (a metric label: never anything a caller chose); `message` says which check failed
    and goes to the log. A CDS Hooks caller is told neither (security best practice: a bare 401)."""

    status_code = 401
    code = "unauthorized"
    public_message = "the request could not be authenticated"

    def __init__(self, message: str, details: list[str] | None = None, *, reason: str = "invalid_token") -> None:
        super().__init__(message, details)
        self.reason = reason


class UnknownRule(BadRequest):
    """A rule (or rule version) named in a request that the rule set does not hold."""


class UnknownSuggestions(BadRequest):
    def __init__(self, ids: list[str]) -> None:
        super().__init__("feedback accepts suggestions the card did not offer", ids)
        self.ids = ids


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class UnknownCards(NotFound):
    def __init__(self, uuids: list[str]) -> None:
        super().__init__("feedback names cards this service did not return", uuids)
        self.uuids = uuids


class PreconditionFailed(ServiceError):
    status_code = 412
    code = "precondition_failed"


class FetchFailed(PreconditionFailed):
    """A fetch from the EHR's FHIR server that failed; `keys`: the prefetch keys whose searches failed (all of the
    call's when the server timed out), named in the 412 with their search templates."""

    def __init__(
        self,
        message: str,
        details: list[str] | None = None,
        *,
        keys: list[str] | None = None,
        partial: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, details)
        self.keys = keys or []
        self.partial = partial or {}  # what the other keys' searches found


class SearchRefused(FetchFailed):
    """The FHIR server refused a search as asked (HTTP 400, 422 or 501: a filter it does not support)."""


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


class ServiceUnavailable(ServiceError):
    """Nothing was done; the same request may succeed later (storage down, the service busy)."""

    status_code = 503
    code = "unavailable"


class InvalidFhir(ServiceError):
    status_code = 422
    code = "invalid_fhir"

    def __init__(self, message: str, problems: list[tuple[str, str]]) -> None:
        """`problems` are (FHIRPath location, message) pairs, one per OperationOutcome issue."""
        super().__init__(message, [f"{loc}: {msg}" for loc, msg in problems])
        self.problems = problems


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One reason a rule set cannot be served: the file (and line, when known), the field and what is wrong."""

    file: str
    field: str
    problem: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.problem}" if self.field else f"{where}: {self.problem}"


class RuleSetRefused(ServiceError):
    status_code = 422
    code = "rule_set_invalid"

    def __init__(self, serving: str, problems: list[str]) -> None:
        super().__init__(f"the changed rule set does not validate; rule set {serving} keeps serving", problems)


class RuleSetInvalid(Exception):
    """The rule set does not validate; it lists every problem found, not just the first."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"the rule set does not validate ({len(problems)} problem(s)):\n{listing}")


class ConfigurationError(Exception):
    """A configuration that cannot work (an issuers file that does not parse, a placeholder key): one line that
    names the setting, the file and the problem, printed instead of a traceback."""


class ValueSetError(ValueError):
    """A value set that cannot be served, with the FHIRPath-like location of the problem."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


def _location(loc: Iterable[Any], fhirpath: bool) -> str:
    if not fhirpath:
        return ".".join(str(part) for part in loc)
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).removeprefix(".")


def field_problems(
    errors: Iterable[Mapping[str, Any]], whole: str = "(body)", *, fhirpath: bool = False
) -> list[tuple[str, str]]:
    """(location, message) for each pydantic error: dotted, or FHIRPath-like (`entry[0].resource`) for FHIR input,
    and `whole` when it is about the whole input. A JSON syntax error keeps the parser's reason."""
    problems = []
    for e in errors:
        location = _location(e.get("loc", ()), fhirpath)
        message = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        reason = (e.get("ctx") or {}).get("error")
        if e.get("type") == "json_invalid" and reason:
            message += f": {reason}"  # e.g. a key written twice; never a value
        problems.append((location or whole, message))
    return problems


def field_errors(error: ValidationError) -> list[str]:
    """`location: message` lines for a validation error, without the input values."""
    return [f"{location}: {message}" for location, message in field_problems(validation_errors(error))]


def validation_errors(error: ValidationError) -> list[Any]:
    """The error's items without the input values or documentation links."""
    return list(error.errors(include_url=False, include_input=False))
