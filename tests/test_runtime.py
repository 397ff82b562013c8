"""The runtime: one typed place where an app keeps it, and deterministic clocks and uuids for tests."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from service.runtime import ReseedableUuids, Runtime, seeded_uuids
from tests.conftest import AppFactory


def test_of_finds_the_runtime_create_app_attached(make_app: AppFactory) -> None:
    app = make_app()
    runtime = Runtime.of(app)
    assert runtime.settings.dev_mode
    assert Runtime.of(app) is runtime


def test_of_refuses_an_app_without_a_runtime() -> None:
    with pytest.raises(TypeError, match="no Runtime"):
        Runtime.of(FastAPI())
    bare = FastAPI()
    bare.state.runtime = object()
    with pytest.raises(TypeError, match="no Runtime"):
        Runtime.of(bare)


def test_seeded_uuids_repeat_for_the_same_seed_and_differ_between_seeds() -> None:
    first, again, other = seeded_uuids("a"), seeded_uuids("a"), seeded_uuids("b")
    drawn = [first() for _ in range(3)]
    assert drawn == [again() for _ in range(3)]
    assert drawn[0] != other()
    assert len(set(drawn)) == 3


def test_reseedable_uuids_start_over_on_reseed() -> None:
    ids = ReseedableUuids()
    ids.reseed("example")
    first = ids()
    ids.reseed("example")
    assert ids() == first
