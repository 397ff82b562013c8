"""Text from a chart that Python holds but UTF-8 cannot: a lone surrogate (`\\ud800`) is a valid JSON escape, so an
EHR may send it; libraries that encode text (pydantic-core, orjson, spaCy's string store) refuse it. It is shown
as U+FFFD wherever such text goes on."""

from __future__ import annotations

from typing import Any


def without_lone_surrogates(value: Any) -> Any:
    """`value` with every lone surrogate in its strings replaced by U+FFFD (pairs written as two escapes are
    joined), in dicts and lists too; any other value as it is."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {without_lone_surrogates(k): without_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_lone_surrogates(item) for item in value]
    return value


def utf8_safe(text: str) -> str:
    """`text` as UTF-8 can hold it: unchanged (no copy) unless it holds a surrogate."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return str(without_lone_surrogates(text))
    return text
