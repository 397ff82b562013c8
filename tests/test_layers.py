"""The package layout holds: each layer imports only the layers below it (docs/architecture.md).

Read from the source with `ast`, so a new import that crosses a layer fails here, not in a review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from service.config import PROJECT_ROOT

# package -> the packages of ours it may import (besides itself and the leaf modules every layer may use)
ALLOWED = {
    "service.fhir": set(),
    "service.engine": {"service.fhir"},
    "service.store": {"service.engine", "service.fhir", "service.cdshooks.models", "service.logs", "service.metrics"},
    "service.cdshooks": {"service.engine", "service.fhir", "service.logs", "service.metrics"},
}
ALWAYS = {"service.errors", "service.config", "service.textsafe"}


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in ("service", "authoring", "tests")}


def module_files(package: str) -> list[Path]:
    return sorted((PROJECT_ROOT / package.replace(".", "/")).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_layer_imports_only_the_layers_below_it(package: str) -> None:
    allowed = ALLOWED[package] | ALWAYS | {package}
    crossing = {
        f"{path.relative_to(PROJECT_ROOT)} imports {name}"
        for path in module_files(package)
        for name in imports_of(path)
        if not any(name == ok or name.startswith(ok + ".") for ok in allowed)
    }
    assert not crossing, sorted(crossing)


def test_the_serving_code_never_imports_author_tooling_or_tests() -> None:
    """authoring/ (diff, rule tests, schema, examples, OpenAPI writer) is for the CLI and the tests only."""
    crossing = {
        f"{path.relative_to(PROJECT_ROOT)} imports {name}"
        for path in module_files("service")
        if path.name != "__main__.py"
        for name in imports_of(path)
        if name.startswith(("authoring", "tests"))
    }
    assert not crossing, sorted(crossing)


def test_the_layer_check_sees_a_crossing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from service.api.deps import RuntimeDep\nimport authoring.diff\n")
    assert imports_of(bad) == {"service.api.deps", "authoring.diff"}
