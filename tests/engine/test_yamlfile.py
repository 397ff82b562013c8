"""Rule-file problems name the line: field paths are found in the YAML (or JSON) they came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.engine.loader import load_ruleset
from service.engine.yamlfile import field_line
from service.errors import RuleSetInvalid
from tests.helpers import active_file, copy_rules

TEXT = """\
id: x
criteria:
  cancer:
    description: Cancer
    finding: {valueset: cancer}
cases:
  - name: one
  - name: two
    expect: {fires: true}
"""


@pytest.mark.parametrize(
    ("field", "line"),
    [
        ("id", 1),
        ("criteria.cancer.finding.valueset", 5),
        ("criteria.cancer.missing_key", 3),  # the deepest part that exists
        ("cases[1].expect", 9),
        ("cases.1.expect.fires", 9),
        ("cases[7]", 6),
    ],
)
def test_a_field_is_found_at_its_line(tmp_path: Path, field: str, line: int) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(TEXT)
    assert field_line(path, field) == line


def test_a_yaml_syntax_error_names_its_line_and_nothing_else_is_blamed(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path)
    path = rules / active_file("mscc-suspected")
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("status:"))
    lines[at] = "status: [active"  # an unclosed flow sequence
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RuleSetInvalid) as refused:
        load_ruleset(rules)
    [problem] = refused.value.problems
    assert problem.file == f"rules/{active_file('mscc-suspected')}"
    assert problem.line is not None
    assert at + 1 <= problem.line <= at + 2  # the parser notices on the line or the next one
    assert str(problem).startswith(f"rules/{active_file('mscc-suspected')}:{problem.line}: not valid YAML")
