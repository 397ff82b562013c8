"""The package layout holds: each layer imports only the layers below it (docs/architecture.md).

Read from the source with `ast`, so a new import that crosses a layer fails here, not in a review.
"""

from __future__ import annotations

import ast
import graphlib
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


def module_graph() -> dict[str, set[str]]:
    """Each module of service/ and authoring/ -> the modules of ours it imports, anywhere in it (a lazy import
    inside a function, or one under TYPE_CHECKING, is an import too: it only hides a cycle)."""
    files = {}
    for path in module_files("service") + module_files("authoring"):
        parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
        graph[name] = {other for other in found if other in files and other != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or around a loop (graphlib finds one per try)."""
    found: list[list[str]] = []
    remaining = {name: set(deps) for name, deps in graph.items()}
    while True:
        try:
            graphlib.TopologicalSorter(remaining).prepare()
            return found
        except graphlib.CycleError as error:
            loop = list(error.args[1])
            found.append(loop)
            first, second = loop[0], loop[1]  # one edge of the loop, in whichever direction the graph holds it
            if second in remaining[first]:
                remaining[first].discard(second)
            else:
                remaining[second].discard(first)


def test_no_module_imports_itself_around_a_loop() -> None:
    assert cycles(module_graph()) == []


def test_the_cycle_check_sees_a_loop() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) != []
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_layer_check_sees_a_crossing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from service.api.deps import RuntimeDep\nimport authoring.diff\n")
    assert imports_of(bad) == {"service.api.deps", "authoring.diff"}
