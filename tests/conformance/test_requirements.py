"""Every service-actor requirement of CDS Hooks 2.0 has a test that proves it or a one-line reason."""

import ast
import csv
from pathlib import Path

import pytest
import yaml

from service.config import PROJECT_ROOT
from tests.helpers import CDSHOOKS

TSV = CDSHOOKS / "requirements" / "cds-hooks_2.0_service-actor_requirements.tsv"
MAPPING = yaml.safe_load((Path(__file__).parent / "requirements.yaml").read_text(encoding="utf-8"))


def functions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def test_every_requirement_is_mapped_and_nothing_else() -> None:
    with TSV.open(encoding="utf-8") as handle:
        ids = {int(row["id"]) for row in csv.DictReader(handle, delimiter="\t")}
    assert len(ids) == 120
    assert sorted(ids - set(MAPPING)) == [], "requirements with neither a test nor a reason"
    assert sorted(set(MAPPING) - ids) == [], "mapped ids that are not service-actor requirements"


@pytest.mark.parametrize("requirement", sorted(MAPPING), ids=str)
def test_each_mapping_names_a_real_test_or_gives_a_reason(requirement: int) -> None:
    entry = MAPPING[requirement]
    assert set(entry) in ({"test"}, {"reason"}), entry
    if "reason" in entry:
        assert len(entry["reason"].split()) >= 3
        return
    path, _, name = entry["test"].partition("::")
    assert name in functions_in(PROJECT_ROOT / path), f"{entry['test']} does not exist"
