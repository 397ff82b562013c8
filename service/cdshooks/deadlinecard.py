"""What a deadline card says: the rule's deadline, when it falls, what was booked and how late it is, in the
hospital's time zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from service.cdshooks.deadline import Late


def deadline_name(delta: timedelta) -> str:
    """`24-hour`, `7-day`: a deadline as an adjective."""
    hours = int(delta.total_seconds() // 3600)
    if hours == 0:
        return f"{int(delta.total_seconds() // 60)}-minute"
    return f"{hours}-hour" if hours < 48 or hours % 24 else f"{hours // 24}-day"


def span(delta: timedelta) -> str:
    """`24 hours`, `7 days`, `3 days 4 hours`: a duration as a clinician says it."""
    hours = int(delta.total_seconds() // 3600)
    if hours < 48:
        return f"{hours} hour{'s' if hours != 1 else ''}" if hours else f"{int(delta.total_seconds() // 60)} minutes"
    days, rest = divmod(hours, 24)
    return f"{days} days" + (f" {rest} hour{'s' if rest != 1 else ''}" if rest else "")


def moment(when: datetime, zone: ZoneInfo) -> str:
    return when.astimezone(zone).strftime("%-d %b %Y %H:%M")


def headline(late: Late, zone: ZoneInfo) -> str:
    """The card's summary (under 140 characters)."""
    deadline, due = deadline_name(late.clock.due - late.clock.started), moment(late.clock.due, zone)
    if late.event == "discharged":
        was = "was" if late.clock.due <= late.now else "is"
        return f"Discharge with no whole-spine MRI done or booked: it {was} due by {due} ({deadline} deadline)"
    if late.when is None:
        return f"Whole-spine MRI {late.event} with no time given: it may miss its {deadline} deadline"
    past, when = span(late.when - late.clock.due), moment(late.when, zone)
    if late.event == "dispatched":
        return f"Whole-spine MRI dispatched with a Task allowing until {when}: {past} past its {deadline} deadline"
    return f"Whole-spine MRI {late.event} for {when}: {past} past its {deadline} deadline"


def detail_lines(late: Late, zone: ZoneInfo) -> list[str]:
    """The markdown that opens the card's detail: the deadline, and what to do."""
    clock = late.clock
    within = span(clock.due - clock.started)
    rule = clock.decision.rule.spec.title
    lines = [
        f"**The MRI deadline is missed.** {rule}: an MRI of the whole spine is due within **{within}** of "
        f"{moment(clock.started, zone)} (the warning sign below), that is by **{moment(clock.due, zone)}**.",
        "",
    ]
    if late.event == "discharged":
        lines.append(
            "- No whole-spine MRI is done or booked. **Book it before the patient leaves** (the order below), and"
        )
        lines.append("  make sure the MSCC coordinator / spinal team knows.")
    elif late.when is None:
        lines.append(f"- {late.what} was {late.event} with no time, so it cannot be shown to meet the deadline.")
        lines.append("- Book a time within the deadline, or order the MRI at the urgency below.")
    elif late.event == "dispatched":
        lines.append(
            f"- {late.what} was dispatched with a fulfilment Task allowing until **{moment(late.when, zone)}**, "
            f"**{span(late.when - clock.due)} late**."
        )
        lines.append("- Ask for a time within the deadline, or send the order where it can be met; contact the")
        lines.append("  MSCC coordinator.")
    else:
        lines.append(
            f"- {late.what} was {late.event} for **{moment(late.when, zone)}**, **{span(late.when - clock.due)} late**."
        )
        lines.append("- Book an earlier slot, or order the MRI at the urgency below; contact the MSCC coordinator.")
    return [*lines, ""]
