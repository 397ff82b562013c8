"""JSON Schemas for what rule authors edit, generated from the models so editors validate as they type."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from authoring.ruletests import CaseFile
from service.engine.model import RuleSetConfig, RuleVersion

SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "rule.schema.json": (RuleVersion, "A version of a rule: rules/<rule-id>/<MAJOR.MINOR.PATCH>.yaml"),
    "ruleset.schema.json": (RuleSetConfig, "The rule set: rules/ruleset.yaml"),
    "tests.schema.json": (CaseFile, "Test cases of a rule: rules/<rule-id>/tests/*.yaml"),
}


def schema_text(model: type[BaseModel], title: str) -> str:
    # Our title and dialect last: the model's own title (its class name) must not replace the one editors show.
    schema: dict[str, Any] = {
        **model.model_json_schema(),
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
    }
    return json.dumps(schema, indent=2) + "\n"


def write_schemas(rules_dir: Path) -> list[Path]:
    written = []
    for name, (model, title) in SCHEMAS.items():
        path = rules_dir / name
        path.write_text(schema_text(model, title), encoding="utf-8")
        written.append(path)
    return written
