"""The ICD editions value sets are checked against: `rules/terminology/*.codes`, one code per line.

Code lists only (no descriptions), sorted, dot-less and upper case as `fhir/codes.py` normalises them, with the
edition and source in their `#` header. Written from the tabular lists by `python -m authoring terminology`; read
at load with a binary search, so checking a few hundred codes costs a few milliseconds and no resident memory.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from service.fhir.codes import ICD10, ICD10CM

TERMINOLOGY_DIR = "terminology"
CODE_LISTS = {ICD10CM: "icd-10-cm.codes", ICD10: "icd-10.codes"}


@dataclass(frozen=True)
class CodeList:
    edition: str  # e.g. "ICD-10-CM April 1, 2026 (CMS)"
    codes: list[str]  # sorted

    def holds(self, code: str) -> bool:
        at = bisect.bisect_left(self.codes, code)
        return at < len(self.codes) and self.codes[at] == code

    def starting_with(self, prefix: str) -> list[str]:
        """Every code of the edition under a prefix (`M541` gives M541, M5410 ... M5418)."""
        at = bisect.bisect_left(self.codes, prefix)
        found = []
        while at < len(self.codes) and self.codes[at].startswith(prefix):
            found.append(self.codes[at])
            at += 1
        return found


def read_code_list(path: Path) -> CodeList:
    """Raise OSError or ValueError when the file cannot be used. Read once per file version (every reload and
    every test loads the rule set again; the list changes once a year)."""
    stat = path.stat()
    return _read_code_list(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _read_code_list(path: Path, _mtime_ns: int, _size: int) -> CodeList:
    edition, codes = "", []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# edition:"):
            edition = line.removeprefix("# edition:").strip()
        elif line and not line.startswith("#"):
            codes.append(line.strip())
    if not edition or not codes:
        raise ValueError("needs a `# edition:` line and one code per line")
    if any(a >= b for a, b in itertools.pairwise(codes)):  # the binary search needs it
        raise ValueError("codes must be sorted and unique (write it with `python -m authoring terminology`)")
    return CodeList(edition, codes)


def render_code_list(edition: str, source: str, licence: str, codes: list[str]) -> str:
    header = f"# edition: {edition}\n# source: {source}\n# licence: {licence}\n"
    return header + "".join(f"{code}\n" for code in sorted(set(codes)))


class IcdEditions:
    """The code lists by system; a system without a list holds nothing (every code of it is reported)."""

    def __init__(self, lists: dict[str, CodeList]) -> None:
        self.lists = lists

    def holds(self, system: str, code: str) -> bool:
        found = self.lists.get(system)
        return found is not None and found.holds(code)

    def under(self, system: str, prefix: str) -> list[str] | None:
        """The codes of this system's edition under a prefix; None when there is no list for the system."""
        found = self.lists.get(system)
        return found.starting_with(prefix) if found is not None else None

    def edition(self, system: str) -> str:
        found = self.lists.get(system)
        return found.edition if found is not None else f"{system} (no code list in rules/{TERMINOLOGY_DIR}/)"


def load_editions(root: Path) -> tuple[IcdEditions, list[tuple[Path, str]]]:
    """The code lists under `root/terminology/`, and (file, problem) for each that is missing or unusable."""
    lists, problems = {}, []
    for system, name in CODE_LISTS.items():
        path = root / TERMINOLOGY_DIR / name
        try:
            lists[system] = read_code_list(path)
        except OSError as error:
            problems.append((path, f"cannot be read ({error.strerror}): ICD codes are checked against it"))
        except ValueError as error:
            problems.append((path, str(error)))
    return IcdEditions(lists), problems
