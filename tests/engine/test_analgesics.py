"""The analgesics value set: every NSAID and opioid by RxNorm ingredient name, checked against the published
code lists it holds, and the ingredient extensions refused when malformed."""

from __future__ import annotations

import json

import pytest

from service.config import PROJECT_ROOT
from service.engine.valuesets import RXNORM_INGREDIENT, CodeIndex, parse_valueset
from service.errors import ValueSetError
from service.fhir.codes import RXNORM

FILE = PROJECT_ROOT / "rules/valuesets/analgesics-rxnorm.json"
RAW = json.loads(FILE.read_text())
ANALGESICS = parse_valueset(RAW, "analgesics-rxnorm")
INDEX = CodeIndex({"analgesics-rxnorm": ANALGESICS})
# Listed codes whose only analgesic is one the set leaves out on purpose (none today): each needs a reason here.
NOT_BY_NAME: dict[str, str] = {}


def listed() -> list[tuple[str, str]]:
    return [
        (str(c["code"]), str(c["display"]))
        for part in RAW["compose"]["include"]
        if part["system"] == RXNORM
        for c in part["concept"]
    ]


def test_every_listed_drug_is_also_known_by_an_ingredient_in_its_name() -> None:
    """The ingredient list covers every ingredient of the published lists: a new strength or form of the same drug,
    under a code the lists do not hold yet, is still recognised."""
    unnamed = [
        f"{code} {display}"
        for code, display in listed()
        if "analgesics-rxnorm" not in INDEX.by_rxnorm_name(display) and code not in NOT_BY_NAME
    ]
    assert unnamed == []


@pytest.mark.parametrize(
    ("name", "ingredient"),
    [
        ("naproxen 500 MG Oral Tablet", "naproxen"),
        ("Naproxen sodium 550 MG Oral Tablet", "naproxen"),
        ("celecoxib 200 MG Oral Capsule", "celecoxib"),
        ("diclofenac sodium 10 MG/ML Topical Gel", "diclofenac"),
        ("meloxicam 15 MG Oral Tablet", "meloxicam"),
        ("mefenamic acid 250 MG Oral Capsule", "mefenamic acid"),
        ("24 HR morphine sulfate 30 MG Extended Release Oral Capsule", "morphine"),
        ("acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet", "codeine"),
    ],
)
def test_ingredients_are_found_in_rxnorm_names(name: str, ingredient: str) -> None:
    assert INDEX.by_rxnorm_name(name) == {"analgesics-rxnorm": ingredient}


@pytest.mark.parametrize(
    "name",
    [
        "ketorolac tromethamine 5 MG/ML Ophthalmic Solution",
        "acetaminophen 500 MG Oral Tablet",
        "aspirin 81 MG Delayed Release Oral Tablet",
        "naloxone hydrochloride 4 MG/ACTUAT Nasal Spray",
        "naproxenol 5 MG Oral Tablet",
    ],
)
def test_other_names_are_not_analgesics(name: str) -> None:
    assert INDEX.by_rxnorm_name(name) == {}


def test_the_set_names_the_nsaids_and_opioids_by_atc_group() -> None:
    ingredients = set(ANALGESICS.ingredients)
    assert {"ibuprofen", "naproxen", "diclofenac", "celecoxib", "ketorolac", "indomethacin"} <= ingredients
    assert {"morphine", "oxycodone", "fentanyl", "tramadol", "tapentadol", "buprenorphine"} <= ingredients
    assert "acetaminophen" not in ingredients
    assert "aspirin" not in ingredients


@pytest.mark.parametrize("value", ["", "  ", "ibuprofen 400 MG", "naproxen|morphine", None])
def test_a_malformed_ingredient_is_refused(value: object) -> None:
    raw = {**RAW, "extension": [{"url": RXNORM_INGREDIENT, "valueString": value}]}
    with pytest.raises(ValueSetError, match=r"extension(\[0\]|\.0)\.valueString"):
        parse_valueset(raw, "analgesics-rxnorm")
