"""`finding`: a clinical finding recorded as a Condition or an Observation, present, recent and not yet imaged."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Self

from service.engine.criteria.node import (
    FINDING_TYPES,
    ORDER_TYPES,
    Compiling,
    CriterionNode,
    CriterionResult,
    Read,
)
from service.engine.factindex import FactIndex
from service.engine.model import Criterion, Finding
from service.engine.timing import on_or_after, sort_time, time_problem
from service.fhir.record import UNCLEAR_ANSWER, Fact, is_current_status

UNCLEAR = "not read with confidence"  # an answer in words that says neither yes nor no: named to the clinician
_DONE_STUDY_TYPES = frozenset({"ImagingStudy", "DiagnosticReport"})
_TYPES = frozenset(FINDING_TYPES)


def _looked_at_since(fact: Fact, studies: list[Fact], now: datetime) -> Fact | None:
    """A study done (or an order completed) on or after the finding began: the sign has been imaged."""
    for study in studies:
        done = study.resource_type in _DONE_STUDY_TYPES or study.status == "completed"
        if done and study.time is not None and on_or_after(study.time.earliest, fact, now):
            return study
    return None


@dataclass(frozen=True)
class FindingCriterion(CriterionNode):
    kind = "finding"
    finding: Finding
    within: timedelta | None
    text_pattern: re.Pattern[str] | None

    @classmethod
    def compile(cls, name: str, spec: Criterion, ctx: Compiling) -> Self:
        finding = spec.finding
        assert finding is not None
        ctx.valueset("finding.valueset", finding.valueset)
        ctx.valueset("finding.text_mentions", finding.text_mentions)
        ctx.valueset("finding.not_followed_by", finding.not_followed_by)
        within = ctx.window("finding.within", finding.within)
        pattern = None
        if finding.text_matches:
            try:
                pattern = re.compile(finding.text_matches, re.IGNORECASE)
            except re.error as error:
                ctx.problem("finding.text_matches", f"not a valid regular expression: {error}")
        return cls(name, spec, finding, within, pattern)

    @property
    def reads(self) -> tuple[Read, ...]:
        found = [Read(FINDING_TYPES, self.finding.valueset, sign=True)]
        if self.finding.not_followed_by is not None:  # the studies that would have looked at the sign
            found.append(Read(ORDER_TYPES, self.finding.not_followed_by))
        return tuple(found)

    @property
    def window(self) -> timedelta | None:
        return self.within

    def evaluate(self, index: FactIndex, now: datetime, done: dict[str, CriterionResult]) -> CriterionResult:
        spec = self.finding
        result = self.result()
        present: list[Fact] = []
        absent: list[Fact] = []
        studies = index.facts(spec.not_followed_by) if spec.not_followed_by else []
        for fact in index.facts(spec.valueset):
            if fact.resource_type not in _TYPES:
                continue
            if self.text_pattern is not None and not self.text_pattern.search(fact.text):
                continue
            if spec.text_mentions is not None and index.says(fact, spec.text_mentions) is None:
                continue
            if fact.presence == "unknown":
                unclear = next((p for p in fact.problems if p.startswith(UNCLEAR_ANSWER)), None)
                why = f"{UNCLEAR}: {unclear}" if unclear else "value absent (dataAbsentReason)"
                result.not_counted.append((fact, why))
                continue
            if not spec.include_resolved and not is_current_status(fact):
                result.not_counted.append((fact, f"clinicalStatus is {fact.status}"))
                continue
            problem = time_problem(fact, self.within, now)
            if problem:
                result.not_counted.append((fact, problem))
                continue
            imaged = _looked_at_since(fact, studies, now) if fact.presence == "present" else None
            if imaged is not None:
                result.not_counted.append((fact, f"imaged since it began ({imaged.label}, {imaged.date_text})"))
                continue
            (present if fact.presence == "present" else absent).append(fact)
        for fact in present:
            negations = [a for a in absent if set(a.keys) & set(fact.keys) and sort_time(a) >= sort_time(fact)]
            if negations:
                result.against.extend(n for n in negations if n not in result.against)
                result.not_counted.append((fact, f"recorded as absent later ({negations[0].reference})"))
            else:
                result.evidence.append(fact)
        result.against.extend(a for a in absent if a not in result.against and not result.evidence)
        result.held = bool(result.evidence)
        return result
