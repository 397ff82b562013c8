"""Override reasons as cards offer them and as feedback sends them back.

Cards offer the HL7 non-adherence reason categories (CDS Hooks 3.0), so overrides compare across sites, each with
this service's own wording. Several of the service's reasons share a category: feedback is mapped back to the
reason by the display the client echoes, to the category alone when it does not, and the service's own codes
(offered before the categories) are still understood.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from service.cdshooks.models import Coding
from service.engine.model import RuleSetConfig

HL7_NON_ADHERENCE = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"


@dataclass(frozen=True)
class ReadReason:
    """What an override reason in feedback means: its HL7 category and the service's own reason, when known."""

    category: str | None
    reason: str | None


def offered(config: RuleSetConfig, codes: list[str]) -> list[Coding]:
    """The card's overrideReasons: each reason as its HL7 category's code, with the service's display."""
    reasons = config.override_reasons
    return [Coding(system=HL7_NON_ADHERENCE, code=reasons[c].category, display=reasons[c].display) for c in codes]


def _same(a: str | None, b: str) -> bool:
    return a is not None and " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def read_reason(config: RuleSetConfig, system: str | None, code: str | None, display: str | None) -> ReadReason:
    """Map a feedback Coding back: an HL7 category (and the reason its display names), the service's own code, or
    neither (another system, or none given)."""
    reasons = config.override_reasons
    if system == config.override_reason_system and code in reasons:
        return ReadReason(reasons[code].category, code)
    if system != HL7_NON_ADHERENCE or code is None:
        return ReadReason(None, None)
    candidates = [name for name, r in reasons.items() if r.category == code]
    if len(candidates) == 1:
        return ReadReason(code, candidates[0])
    named = [name for name in candidates if _same(display, reasons[name].display)]
    return ReadReason(code, named[0] if len(named) == 1 else None)


def reason_reader(
    config: RuleSetConfig,
) -> Callable[[str | None, str | None, str | None], tuple[str | None, str | None]]:
    """For the reports: a stored Coding (system, code, display) to (category, the service's reason)."""

    def read(system: str | None, code: str | None, display: str | None) -> tuple[str | None, str | None]:
        found = read_reason(config, system, code, display)
        return found.category, found.reason

    return read
