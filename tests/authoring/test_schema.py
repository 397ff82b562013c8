"""The JSON Schemas in rules/ are current, and every rule, rule-set and test file validates against them."""

import json
from pathlib import Path

import jsonschema
import pytest

from authoring.schema import SCHEMAS, schema_text
from service.config import PROJECT_ROOT
from service.engine.loader import VALIDATION_DIR, VALUESET_DIR
from service.engine.yamlfile import load_yaml

RULES = PROJECT_ROOT / "rules"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_files_are_current(name: str) -> None:
    model, title = SCHEMAS[name]
    assert (RULES / name).read_text() == schema_text(model, title), "run: python -m authoring rules schema"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schemas_keep_the_title_editors_show(name: str) -> None:
    assert json.loads((RULES / name).read_text())["title"] == SCHEMAS[name][1]


def files_for(name: str) -> list[Path]:
    if name == "rule.schema.json":
        return [p for p in RULES.glob("*/*.yaml") if p.parent.name not in (VALUESET_DIR, VALIDATION_DIR)]
    if name == "tests.schema.json":
        return list(RULES.glob("*/tests/*.yaml"))
    return [RULES / "ruleset.yaml"]


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_files_validate_against_the_published_schema(name: str) -> None:
    schema = json.loads((RULES / name).read_text())
    for path in files_for(name):
        jsonschema.validate(load_yaml(path), schema)
