"""Words read with medspaCy ConText: what a text names, and what an answer says of a finding."""

import pytest

from service.config import PROJECT_ROOT
from service.engine.loader import load_ruleset
from service.fhir.textread import TextReader, TextRuleError, TextTerms

READER = load_ruleset(PROJECT_ROOT / "rules").text_reader
assert READER is not None


@pytest.mark.parametrize(
    ("text", "valueset", "assertion"),
    [
        ("Metastatic spinal cord compression T10", "mscc-diagnoses", "present"),
        ("Weakness of both legs", "limb-weakness", "present"),
        ("No weakness of the legs", "limb-weakness", "absent"),
        ("Patient denies numbness", "sensory-disturbance", "absent"),
        ("Family history of breast cancer", "cancer", "family"),
        ("History of breast cancer", "cancer", "historical"),
        ("Screening for malignant neoplasm of breast", "cancer", "unclear"),
        ("Suspected cord compression", "mscc-diagnoses", "unclear"),
        ("If weakness of the legs develops, come back at once", "limb-weakness", "unclear"),
        ("Bilateral sciatica", "radicular-pain", "present"),
        ("Primary malignant neoplasm of female left breast", "cancer", "present"),
    ],
)
def test_a_text_names_a_value_set_and_says_what_of_it(text: str, valueset: str, assertion: str) -> None:
    assert [(m.valueset, m.assertion) for m in READER.mentions(text) if m.valueset == valueset] == [
        (valueset, assertion)
    ]


@pytest.mark.parametrize(
    "text", ["Ductal carcinoma in situ of breast", "Basal cell carcinoma of skin", "Hypertension", "", "   "]
)
def test_words_that_only_look_like_a_cancer_name_nothing(text: str) -> None:
    assert [m for m in READER.mentions(text) if m.valueset == "cancer"] == []


@pytest.mark.parametrize(
    ("answer", "reading"),
    [
        ("Patient denies", "absent"),
        ("No", "absent"),
        ("Negative", "absent"),
        ("not present", "absent"),
        ("Yes", "present"),
        ("Present", "present"),
        ("mild, left leg", "present"),
        ("Unable to assess, patient drowsy", "unclear"),
        ("not assessed", "unclear"),
        ("asdf", "unclear"),
        ("", "unclear"),
    ],
)
def test_an_answer_is_present_absent_or_unclear(answer: str, reading: str) -> None:
    assert READER.answer(answer) == reading


def test_a_very_long_text_is_read_in_bounded_time() -> None:
    assert READER.mentions("word " * 100_000) == ()


def test_a_bad_pattern_or_rule_file_is_refused(tmp_path) -> None:
    rules = PROJECT_ROOT / "rules" / "text"
    mentions = ("mentions.json", (rules / "mentions.json").read_text())
    answers = ("answers.json", (rules / "answers.json").read_text())
    bad = TextTerms({}, {"x": (({"LOWER": {"NOPE": 1}},),)}, {})
    with pytest.raises(TextRuleError):
        TextReader(bad, mentions, answers)
    broken = ("broken.json", '{"context_rules": [{"literal": "no"}]}')
    with pytest.raises(TextRuleError, match=r"broken\.json"):
        TextReader(TextTerms({"x": ("y",)}, {}, {}), broken, answers)
