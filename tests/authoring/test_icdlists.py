"""rules/terminology/ holds exactly the ICD code lists of the installed tabular-list packages."""

from __future__ import annotations

from pathlib import Path

from authoring.icdlists import code_list_outputs, stale_code_lists, write_code_lists
from service.engine.terminology import read_code_list


def test_the_code_lists_are_what_the_packages_give() -> None:
    assert stale_code_lists() == [], "run `python -m authoring terminology` and commit rules/terminology/"


def test_written_lists_read_back_with_their_edition(tmp_path: Path) -> None:
    written = write_code_lists(tmp_path)
    lists = {path.name: read_code_list(path) for path in written}
    assert lists["icd-10-cm.codes"].edition.startswith("ICD-10-CM")
    assert lists["icd-10-cm.codes"].holds("C7951")
    assert not lists["icd-10.codes"].holds("C7951")  # an ICD-10-CM subdivision, not WHO's
    assert lists["icd-10.codes"].holds("C795")
    assert stale_code_lists(tmp_path) == []
    assert set(code_list_outputs(tmp_path)) == {
        tmp_path / "terminology" / "icd-10-cm.codes",
        tmp_path / "terminology" / "icd-10.codes",
    }
