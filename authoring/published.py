"""Read the published code lists in `authoring/published-codes/` (inputs for value sets, not value sets)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from service.config import PROJECT_ROOT

PUBLISHED = PROJECT_ROOT / "authoring" / "published-codes"  # copied in with PROVENANCE.md


@dataclass(frozen=True)
class PublishedCode:
    system: str
    code: str
    display: str
    source_valueset: str
    source_file: str
    active: bool
    file: str

    @property
    def semantic_tag(self) -> str | None:
        """The SNOMED CT semantic tag at the end of a fully specified name: `(disorder)` -> `disorder`."""
        text = self.display.rstrip()
        if not text.endswith(")") or "(" not in text:
            return None
        return text[text.rindex("(") + 1 : -1]


def read_list(name: str, folder: Path = PUBLISHED) -> list[PublishedCode]:
    """Every row of one published CSV, in file order."""
    with (folder / name).open(encoding="utf-8", newline="") as handle:
        return [
            PublishedCode(
                row["system"],
                row["code"],
                row["display"],
                row["source_valueset"],
                row["source_file"],
                row.get("active", "y") != "n",
                name,
            )
            for row in csv.DictReader(handle)
        ]
