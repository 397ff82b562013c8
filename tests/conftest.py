"""Shared fixtures: a development-mode app with a fixed clock and seeded uuids, and the shared/ spec material."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import PROJECT_ROOT, Settings
from service.engine.loader import load_ruleset
from service.engine.ruleset import RuleSet
from service.examples import seeded_uuids

SHARED = PROJECT_ROOT.parent / "shared"
CDSHOOKS = SHARED / "cdshooks"
EXAMPLES = PROJECT_ROOT / "fhir_examples"
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def ruleset() -> RuleSet:
    return load_ruleset(PROJECT_ROOT / "rules")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(dev_mode=True, database_url=f"sqlite:///{tmp_path / 'test.sqlite3'}")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, clock=lambda: NOW, new_uuid=seeded_uuids("test"))
    with TestClient(app) as test_client:
        yield test_client


def patient_bundle(name: str) -> dict[str, Any]:
    return load_json(EXAMPLES / "patients" / f"{name}.json")


def hook_request(name: str) -> dict[str, Any]:
    return load_json(EXAMPLES / "requests" / f"{name}.json")


def requires_shared() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not CDSHOOKS.is_dir(), reason="../shared/cdshooks is not beside the repository")
