"""Every name means one thing: no two public classes or public top-level functions of service/ and authoring/
share a name (two `Case`s, two `Answer`s and two `evaluate`s once meant different things in different modules)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from service.config import PROJECT_ROOT

# names that are a convention, not a concept: each migration's upgrade/downgrade, each entry point's main
CONVENTIONAL = {"upgrade", "downgrade", "main"}


def public_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defined = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {node.name for node in tree.body if isinstance(node, defined) and not node.name.startswith("_")}


def shared_names(root: Path, files: list[Path]) -> dict[str, list[str]]:
    where: dict[str, list[str]] = defaultdict(list)
    for path in files:
        for name in public_names(path) - CONVENTIONAL:
            where[name].append(str(path.relative_to(root)))
    return {name: paths for name, paths in sorted(where.items()) if len(paths) > 1}


def test_no_two_public_classes_or_functions_share_a_name() -> None:
    files = sorted((PROJECT_ROOT / "service").rglob("*.py")) + sorted((PROJECT_ROOT / "authoring").rglob("*.py"))
    assert shared_names(PROJECT_ROOT, files) == {}


def test_the_name_check_sees_a_shared_name(tmp_path: Path) -> None:
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text("class Case: ...\ndef main(): ...\ndef _private(): ...\n")
    (tmp_path / "c.py").write_text("class Other: ...\n")
    assert shared_names(tmp_path, sorted(tmp_path.glob("*.py"))) == {"Case": ["a.py", "b.py"]}
