"""Read what a chart says in words, with medspaCy's ConText (rule-based: no model is downloaded).

Two questions come to words. *What does this text name?* A finding coded only in a hospital's own code system, or
written as `code.text` with no coding, names a warning sign or a cancer in words: the terms come from the value sets
(rule data), and ConText says whether the text asserts it, denies it, supposes it, or speaks of a relative.
*What does this answer say about a known finding?* "Leg weakness: patient denies" is an Observation whose code is a
warning sign and whose value is words: ConText reads the answer after the finding's name with the answer rules of
`rules/text/answers.json`.

Anything not read with confidence is `unclear`: the caller sends it to the clinician as "could not be read", never
onto a card as a present sign. Readings are cached by text: a chart repeats the same displays.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, Literal

from service.textsafe import utf8_safe

Assertion = Literal["present", "absent", "unclear", "family", "historical"]
AnswerReading = Literal["present", "absent", "unclear"]
NOT_PREFIX = "not:"  # a target label that says "these words do not name the value set" (carcinoma *in situ*)
MAX_TEXT = 2_000  # longer text is cut before reading: a label is short, and a 4 MB display must not cost seconds
_UNSURE = frozenset({"POSSIBLE_EXISTENCE", "HYPOTHETICAL"})
_FINDING = "Finding"  # the stand-in for the finding's name when an answer is read


class TextRuleError(ValueError):
    """A text term, pattern or ConText rule file that medspaCy cannot use (the rule set is then refused)."""


@dataclass(frozen=True, slots=True)
class Mention:
    """A value set named in words, and what the text says of it."""

    valueset: str
    words: str
    assertion: Assertion


@dataclass(frozen=True)
class TextTerms:
    """What names each value set in words: literal phrases and spaCy token patterns, and words that undo a match."""

    phrases: Mapping[str, tuple[str, ...]]
    patterns: Mapping[str, tuple[tuple[dict[str, Any], ...], ...]]
    not_phrases: Mapping[str, tuple[str, ...]]

    def __bool__(self) -> bool:
        return bool(self.phrases or self.patterns)


@cache
def _nlp() -> Any:
    """A blank English tokenizer and sentence splitter, built once per process (spaCy's import takes ~1 s)."""
    with warnings.catch_warnings():  # spaCy's CLI imports a deprecated click name; nothing of it is used here
        warnings.simplefilter("ignore")
        import spacy

        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
    return nlp


def _context_rules(name: str, text: str) -> list[Any]:
    from medspacy.context import ConTextRule

    try:
        return [ConTextRule.from_dict(rule) for rule in json.loads(text)["context_rules"]]
    except (ValueError, KeyError, TypeError) as error:
        raise TextRuleError(f"{name}: not a medspaCy ConText rule file: {error}") from None


def _run(component: Any, doc: Any) -> Any:
    with warnings.catch_warnings():  # spaCy's Matcher warns on an empty doc; an empty text reads as nothing
        warnings.simplefilter("ignore")
        return component(doc)


class TextReader:
    """The medspaCy pipeline of one rule set: its terms, medspaCy's ConText rules and the rule set's own."""

    def __init__(self, terms: TextTerms, mention_rules: tuple[str, str], answer_rules: tuple[str, str]) -> None:
        """`mention_rules` and `answer_rules` are (file name, text) of medspaCy ConText rule files."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from medspacy.context import ConText
            from medspacy.target_matcher import TargetMatcher, TargetRule
        nlp = _nlp()
        self._nlp = nlp
        self._sentences = nlp.get_pipe("sentencizer")
        self._targets = TargetMatcher(nlp, name="mscc_terms")
        rules: list[Any] = []
        for label, phrases in terms.phrases.items():
            rules += [TargetRule(p, label) for p in phrases]
        for label, patterns in terms.patterns.items():
            rules += [TargetRule(f"{label} pattern {i}", label, pattern=list(p)) for i, p in enumerate(patterns)]
        for label, phrases in terms.not_phrases.items():
            rules += [TargetRule(p, NOT_PREFIX + label) for p in phrases]
        try:
            self._targets.add(rules)
            self._context = ConText(nlp, rules="default", name="mscc_mentions")
            self._context.add(_context_rules(*mention_rules))
            self._answers = ConText(nlp, rules=None, name="mscc_answers")
            self._answers.add(_context_rules(*answer_rules))
        except TextRuleError:
            raise
        except Exception as error:  # medspaCy raises ValueError, KeyError or its own errors on a bad pattern
            raise TextRuleError(f"medspaCy refused a term or rule: {error}") from None
        self.mentions = lru_cache(maxsize=8192)(self._mentions)
        self.answer = lru_cache(maxsize=4096)(self._answer)

    def _doc(self, text: str) -> Any:
        return _run(self._sentences, self._nlp.make_doc(utf8_safe(text[:MAX_TEXT])))

    def _mentions(self, text: str) -> tuple[Mention, ...]:
        """The value sets the text names, each with what the text asserts of it (in the order written)."""
        if not text.strip():
            return ()
        doc = _run(self._context, _run(self._targets, self._doc(text)))
        found = []
        for ent in doc.ents:
            if ent.label_.startswith(NOT_PREFIX):
                continue
            found.append(Mention(ent.label_, ent.text, _assertion({m.category for m in ent._.modifiers})))
        return tuple(found)

    def _answer(self, answer: str) -> AnswerReading:
        """What an answer to a finding question says: present, absent, or unclear (not read with confidence).

        The answer is read after a stand-in for the finding's name, so the words of the name ("left" in "paresis
        of left lower limb") are never taken for part of the answer."""
        from spacy.tokens import Span

        answer = " ".join(answer.split())[:MAX_TEXT]
        if not answer:
            return "unclear"
        doc = self._doc(f"{_FINDING}: {answer}")
        doc.ents = [Span(doc, 0, 1, label="FINDING")]
        doc = _run(self._answers, doc)
        categories = {m.category for ent in doc.ents for m in ent._.modifiers}
        if categories & _UNSURE:
            return "unclear"
        if "NEGATED_EXISTENCE" in categories:
            return "absent"
        if "AFFIRMED" in categories:
            return "present"
        return "unclear"


def _assertion(categories: Iterable[str]) -> Assertion:
    found = set(categories)
    if "FAMILY" in found:
        return "family"
    if found & _UNSURE:
        return "unclear"
    if "NEGATED_EXISTENCE" in found:
        return "absent"
    if "HISTORICAL" in found:
        return "historical"
    return "present"
