"""The ICD code lists: read with their edition, refused when unusable."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.engine.terminology import load_editions, read_code_list, render_code_list
from service.fhir.codes import ICD10, ICD10CM


def test_a_list_round_trips_and_answers_by_binary_search(tmp_path: Path) -> None:
    path = tmp_path / "x.codes"
    path.write_text(render_code_list("Test 2026", "here", "none", ["B2", "A1", "C3", "A1"]), encoding="utf-8")
    found = read_code_list(path)
    assert found.edition == "Test 2026"
    assert found.codes == ["A1", "B2", "C3"]
    assert found.holds("B2")
    assert not found.holds("B")
    assert not found.holds("D4")


@pytest.mark.parametrize(
    ("text", "said"),
    [("A1\nB2\n", "edition"), ("# edition: X\n", "edition"), ("# edition: X\nB2\nA1\n", "sorted")],
)
def test_an_unusable_list_is_refused(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "x.codes"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=said):
        read_code_list(path)


def test_missing_lists_are_named_and_hold_nothing(tmp_path: Path) -> None:
    editions, problems = load_editions(tmp_path)
    assert {path.name for path, _ in problems} == {"icd-10-cm.codes", "icd-10.codes"}
    assert not editions.holds(ICD10CM, "C7951")
    assert "no code list" in editions.edition(ICD10)
