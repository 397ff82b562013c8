"""Example bodies for the OpenAPI document, read from fhir_examples/ so docs and tests share one source."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from service.config import PROJECT_ROOT

EXAMPLES_DIR = PROJECT_ROOT / "fhir_examples"
SHOWN = {
    "01-mscc-breast-cancer-leg-weakness": "Suspected MSCC: critical card",
    "03-prostate-cancer-bone-mets-new-back-pain": "Spinal pain with a red flag: warning card",
    "09-no-cancer-low-back-pain-only": "No warning signs: no card",
}


def _load(folder: str) -> dict[str, dict[str, Any]]:
    examples = {}
    for name, summary in SHOWN.items():
        path = EXAMPLES_DIR / folder / f"{name}.json"
        if path.is_file():
            examples[name] = {"summary": summary, "value": json.loads(path.read_text(encoding="utf-8"))}
    return examples


@cache
def hook_request_examples() -> dict[str, dict[str, Any]]:
    return _load("requests")


@cache
def bundle_examples() -> dict[str, dict[str, Any]]:
    return _load("patients")
