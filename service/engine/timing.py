"""When a fact counts: within a criterion's window, not after the evaluation time, and when a study came after a sign.

Shared by the criterion kinds (engine/criteria/), so "recent", "undated" and "since it began" mean one thing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.fhir.record import Fact

UNDATED = "undated"  # a finding with neither a date nor a clinical status: named to the clinician, never guessed
# Clocks differ between the EHR and us: a finding dated a few minutes "in the future" is still now.
CLOCK_SKEW = timedelta(minutes=5)
OPEN_ORDER = frozenset({"draft", "active", "on-hold"})
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def time_problem(fact: Fact, window: timedelta | None, now: datetime) -> str | None:
    """Why a fact falls outside [now - window, now], or None when it counts."""
    if fact.time is None:
        if window is None or fact.at_encounter:
            return None  # a diagnosis made at this very encounter is current, dated or not
        if fact.resource_type == "Condition" and fact.status in ("active", "recurrence", "relapse"):
            return None  # an undated but active problem is current by its own statement
        if fact.resource_type == "ServiceRequest" and fact.status in OPEN_ORDER:
            return None  # so is an open order (a draft being signed now, or one placed and not yet done)
        return f"{UNDATED}, with no clinical status: not known to be recent"
    # Differences, not sums: `now + skew` or `now - window` overflow at the ends of the calendar.
    if fact.time.earliest > now and fact.time.earliest - now > CLOCK_SKEW:
        return f"dated {fact.date_text}, after the evaluation time"
    if window is not None and fact.time.latest < now and now - fact.time.latest > window:
        if fact.recorded is not None:  # re-recorded: the onset says it is long-standing
            return f"began {fact.date_text} (recorded {fact.recorded.text}), more than {window.days} days ago"
        return f"dated {fact.date_text}, older than {window.days} days"
    return None


def on_or_after(later: datetime, onset: Fact, now: datetime) -> bool:
    """Was `later` on or after the day the finding began (an undated finding of this encounter began now)?

    A partial onset ("2026-11") is read at its latest, so a scan that may have come before the sign never counts."""
    began = onset.time.latest if onset.time is not None else now
    return later.date() >= began.date()


def sort_time(fact: Fact) -> datetime:
    """The fact's latest possible time, undated facts first."""
    return fact.time.latest if fact.time else _EARLIEST
