"""The service's error tree. Each error knows its HTTP status; `service.api.errors` maps them to answers.

ServiceError
├── BadRequest (400)            the request breaks CDS Hooks (malformed JSON, wrong hook, bad context)
├── Unauthorized (401)          missing or invalid JWT
├── NotFound (404)              unknown service or card
├── PayloadTooLarge (413)       body over the configured limit
├── PreconditionFailed (412)    required FHIR data neither prefetched nor fetchable
└── InvalidFhir (422)           /evaluate input that is not valid FHIR (answered as an OperationOutcome)

RuleSetInvalid                  a rule set that does not validate: never served, start-up stops
"""

from __future__ import annotations

from dataclasses import dataclass


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
    status_code = 401
    code = "unauthorized"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class PreconditionFailed(ServiceError):
    status_code = 412
    code = "precondition_failed"


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
    """One reason a rule set cannot be served: the file, the field (dotted path) and what is wrong."""

    file: str
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.problem}" if self.field else f"{self.file}: {self.problem}"


class RuleSetInvalid(Exception):
    """The rule set does not validate; it lists every problem found, not just the first."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"the rule set does not validate ({len(problems)} problem(s)):\n{listing}")
