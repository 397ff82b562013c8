"""YAML reading for rule files: safe, and a duplicated key is an error (PyYAML would keep the last silently)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

# libyaml's parser when PyYAML was built with it (ten times faster on the rule files), the same semantics either way.
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_Base):  # type: ignore[misc]
    pass


def _mapping(loader: Any, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
# Dates stay strings: rule files and tests compare them as FHIR text, not as Python dates.
_UniqueKeyLoader.yaml_implicit_resolvers = {
    k: [(tag, regexp) for tag, regexp in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(path: Path) -> Any:
    """Parse one YAML file; raises yaml.YAMLError with line and column on bad syntax or duplicate keys."""
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


_PART = re.compile(r"[^.\[\]]+|\[\d+\]")


def field_line(path: Path, field: str) -> int | None:
    """The 1-based line of `field` (`criteria.pain.within`, `cases[2].expect` or `cases.2.expect`) in a YAML or
    JSON file, or of the deepest part of it that exists; None when the file cannot be read. Only on the error
    path: a rule author is told where to look, not just what is wrong."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if node is None:
        return None
    line = int(node.start_mark.line) + 1
    parts = _PART.findall(field)
    names_root = parts and parts[0][:1].isupper() and isinstance(node, yaml.MappingNode)
    if names_root and not any(getattr(k, "value", None) == parts[0] for k, _ in node.value):
        parts = parts[1:]  # `ValueSet.compose...`: the resource type names the file's root, not a key
    for part in parts:
        found: tuple[Any, Any] | None = None  # (the node that names it, its value)
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode):
            index = part.strip("[]")
            if index.isdigit() and int(index) < len(node.value):
                found = (node.value[int(index)], node.value[int(index)])
        if found is None:
            break
        line, node = int(found[0].start_mark.line) + 1, found[1]
    return line
