"""The record's facts grouped by value set: what every criterion looks facts up in during one evaluation."""

from __future__ import annotations

from service.engine.valuesets import CodeIndex
from service.fhir.codes import TEXT
from service.fhir.record import Fact, PatientRecord
from service.fhir.textread import TextReader


class FactIndex:
    """Every coding of every fact is looked up exactly once, however many criteria read it."""

    def __init__(self, record: PatientRecord, codes: CodeIndex, reader: TextReader | None = None) -> None:
        self.record = record
        self.codes = codes
        self.reader = reader
        self._by_valueset: dict[str, list[Fact]] = {}
        for fact in record.facts:
            holders: set[str] = set()
            for key in fact.keys:
                holders.update(codes.lookup(key))
            for vs_id in holders:
                self._by_valueset.setdefault(vs_id, []).append(fact)

    def facts(self, valueset: str) -> list[Fact]:
        return self._by_valueset.get(valueset, [])

    def says(self, fact: Fact, valueset: str) -> str | None:
        """The words (or the code) by which the fact says it is of `valueset`, denials left out; else None."""
        if any(valueset in self.codes.lookup(k) for k in fact.keys if k[0] != TEXT):
            return fact.label
        if self.reader is None:
            return None
        for mention in self.reader.mentions(fact.text):
            if mention.assertion == "present" and valueset in self.codes.lookup((TEXT, mention.valueset)):
                return mention.words
        return None
