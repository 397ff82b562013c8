"""Every service-actor requirement of CDS Hooks 2.0, and every 3.0 change that binds a service, has a test that
proves it or a one-line reason."""

import ast
import csv
import re
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


def names_a_real_test_or_gives_a_reason(entry: dict[str, str]) -> None:
    assert set(entry) in ({"test"}, {"reason"}), entry
    if "reason" in entry:
        assert len(entry["reason"].split()) >= 3
        return
    path, _, name = entry["test"].partition("::")
    assert name in functions_in(PROJECT_ROOT / path), f"{entry['test']} does not exist"


@pytest.mark.parametrize("requirement", sorted(MAPPING), ids=str)
def test_each_mapping_names_a_real_test_or_gives_a_reason(requirement: int) -> None:
    names_a_real_test_or_gives_a_reason(MAPPING[requirement])


CHANGES = yaml.safe_load((Path(__file__).parent / "changes-3.0.yaml").read_text(encoding="utf-8"))
# The HL7 Jira issues of the 3.0.0 change log (logical-models-3.0-ballot/changes.md, CDS Hooks 3.0.0 section)
CHANGE_LOG_3_0 = {
    "FHIR-37609", "FHIR-35999", "FHIR-39328", "FHIR-48319", "FHIR-50287", "FHIR-41437", "FHIR-28695",
    "FHIR-28650", "FHIR-28684", "FHIR-54673", "FHIR-52890", "FHIR-28681", "FHIR-48315", "FHIR-37606",
    "FHIR-50498",
}  # fmt: skip


def test_every_3_0_change_is_mapped() -> None:
    assert sorted(CHANGE_LOG_3_0 - set(CHANGES)) == [], "3.0 changes with neither a test nor a reason"
    changelog = CDSHOOKS.parent.parent.parent.parent / "shared/cdshooks/logical-models-3.0-ballot/changes.md"
    if changelog.exists():  # beside a checkout with ../shared: the list above is the change log's, no more, no less
        section = changelog.read_text(encoding="utf-8").split("#### CDS Hooks 3.0.0")[1].split("#### CDS Hooks 2")[0]
        assert set(re.findall(r"FHIR-\d+", section)) == CHANGE_LOG_3_0


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_each_3_0_change_names_a_real_test_or_gives_a_reason(change: str) -> None:
    names_a_real_test_or_gives_a_reason(CHANGES[change])
