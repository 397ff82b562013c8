"""The strict JSON parse: orjson's speed, and a key written twice is still found, whatever the body looks like."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.api.strictjson import loads_strict

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), st.text(max_size=8)
)
KEYS = st.text(alphabet=st.sampled_from(["a", "b", ":", '"', "\\", " ", "é", "\u2028"]), min_size=1, max_size=4)
TREES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=20
)


def written(value: Any, twice: list[bool], pretty: bool, ascii_only: bool) -> str:
    """JSON text of `value`; the first object met with `twice[0]` set gets its first key written twice."""
    if isinstance(value, dict):
        pairs = [
            f"{json.dumps(k, ensure_ascii=ascii_only)}{' : ' if pretty else ':'}{written(v, twice, pretty, ascii_only)}"
            for k, v in value.items()
        ]
        if value and twice[0]:
            twice[0] = False
            pairs.append(pairs[0])
        return "{" + ", ".join(pairs) + "}"
    if isinstance(value, list):
        return "[" + ",".join(written(v, twice, pretty, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


@settings(max_examples=400, deadline=None)
@given(TREES, st.booleans(), st.booleans(), st.booleans())
def test_a_repeated_key_is_always_found_and_nothing_else_is_refused(
    tree: Any, duplicate: bool, pretty: bool, ascii_only: bool
) -> None:
    flag = [duplicate]
    text = written(tree, flag, pretty, ascii_only).encode()
    repeated = duplicate and not flag[0]  # some object took the repeated key
    if repeated:
        with pytest.raises(json.JSONDecodeError, match="appears twice"):
            loads_strict(text)
    else:
        assert loads_strict(text) == json.loads(text)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":1,"a":2}',
        b'{"a": {"b": 1}, "a": {}}',
        b'{"a\\u003a":1,"a\\u003a":2}',  # a colon written as an escape: counted the slow way
        b'[{"x": "y\\":"}, {"k\\\\": 1, "k\\\\": 2}]',
    ],
)
def test_repeated_keys_are_named(body: bytes) -> None:
    with pytest.raises(json.JSONDecodeError, match="appears twice"):
        loads_strict(body)


def test_what_the_standard_library_reads_is_still_read() -> None:
    assert math.isnan(loads_strict(b'{"v": NaN}')["v"])  # orjson refuses NaN: the standard parse takes it
    assert loads_strict(b'{"k": "\\ud800"}') == {"k": "\ud800"}  # a lone surrogate
    assert loads_strict('{"k": "é"}'.encode("utf-16")) == {"k": "é"}
    # Beyond 64 bits an integer is read as a double, as every decimal already is (the standard library too).
    assert loads_strict(b'{"n": 123456789012345678901234567890}')["n"] == pytest.approx(1.2345678901234568e29)
    with pytest.raises(json.JSONDecodeError):
        loads_strict(b'{"a": ')
