"""Fixtures: the rule set, and one app factory that builds the service as it runs, with a database under
`tmp_path`, a fixed clock and seeded uuids. Helpers that are not fixtures are in `tests/helpers.py`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import settings as hypothesis_settings

from service.app import create_app
from service.config import PROJECT_ROOT, Settings
from service.engine.loader import load_ruleset
from service.engine.ruleset import RuleSet
from service.runtime import seeded_uuids
from tests.conformance.invariants import check_exchange
from tests.helpers import NOW, copy_rules
from tests.pgserver import server_binaries, throwaway_postgres

# Property tests draw the same examples on every run, so `make test` gives the same verdict each time (as the
# schemathesis run has its fixed seed); HYPOTHESIS_PROFILE=explore draws new ones, to look for new failures.
hypothesis_settings.register_profile("repeatable", derandomize=True, database=None)
hypothesis_settings.register_profile("explore", database=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


CHECKED = {"exchanges": 0}  # CDS Hooks exchanges the invariants were checked on, in this process


def _json(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _check(request: Any, response: Any) -> None:
    if request.method != "POST" or "/cds-services/" not in request.url.path:
        return
    CHECKED["exchanges"] += 1
    broken = check_exchange(
        request.method, request.url.path, _json(request.content), response.status_code, _json(response.content)
    )
    assert not broken, f"{request.url.path} broke the CDS Hooks 3.0 invariants: {broken}"


def _http_clients() -> list[Any]:
    """The client classes the suite sends with: httpx (live servers, the service's own fetches) and the httpx fork
    Starlette's TestClient is built on."""
    modules: list[Any] = [httpx]
    try:
        import httpx2  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        modules.append(httpx2)
    return modules


@pytest.fixture(scope="session", autouse=True)
def cds_hooks_invariants_hold_on_every_exchange() -> Iterator[None]:
    """Every CDS Hooks call and feedback the suite makes, in process or to a live server, is checked against the
    3.0 logical models' invariants (tests/conformance/invariants.py): a test whose exchange breaks one fails."""
    originals: list[tuple[Any, Any, Any]] = []
    for module in _http_clients():
        plain, asynchronous = module.Client.send, module.AsyncClient.send
        originals.append((module, plain, asynchronous))

        def send(self: Any, request: Any, *args: Any, _plain: Any = plain, **kwargs: Any) -> Any:
            response = _plain(self, request, *args, **kwargs)
            if not kwargs.get("stream"):
                _check(request, response)
            return response

        async def send_async(
            self: Any, request: Any, *args: Any, _asynchronous: Any = asynchronous, **kwargs: Any
        ) -> Any:
            response = await _asynchronous(self, request, *args, **kwargs)
            if not kwargs.get("stream"):
                _check(request, response)
            return response

        module.Client.send = send
        module.AsyncClient.send = send_async
    yield
    for module, plain, asynchronous in originals:
        module.Client.send, module.AsyncClient.send = plain, asynchronous


class AppFactory(Protocol):
    def __call__(
        self,
        *,
        clock: Callable[[], datetime] = ...,
        new_uuid: Callable[[], str] | None = None,
        seed: str = "test",
        transport: httpx.AsyncBaseTransport | None = None,
        **settings: Any,
    ) -> FastAPI: ...


@pytest.fixture(scope="session")
def ruleset() -> RuleSet:
    return load_ruleset(PROJECT_ROOT / "rules")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Development mode over this test's own database (never var/ in the checkout)."""
    return Settings(dev_mode=True, database_url=database_url)


@pytest.fixture
def make_app(settings: Settings) -> AppFactory:
    """`make_app(**overrides)`: the app with these settings changed (e.g. `dev_mode=False`), its clock fixed at
    NOW and its uuids seeded by `seed`, unless a `clock` or `new_uuid` is given."""

    def build(
        *,
        clock: Callable[[], datetime] = lambda: NOW,
        new_uuid: Callable[[], str] | None = None,
        seed: str = "test",
        transport: httpx.AsyncBaseTransport | None = None,
        **overrides: Any,
    ) -> FastAPI:
        chosen = Settings(**{**settings.model_dump(), **overrides}) if overrides else settings
        return create_app(chosen, clock=clock, new_uuid=new_uuid or seeded_uuids(seed), transport=transport)

    return build


@pytest.fixture
def client(make_app: AppFactory) -> Iterator[TestClient]:
    with TestClient(make_app()) as test_client:
        yield test_client


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """A copy of rules/ this test may edit."""
    return copy_rules(tmp_path)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server: CI's (MSCC_TEST_POSTGRES_URL), else one of our own when the server binaries are
    installed (tests/pgserver.py); skipped without either, failed when MSCC_REQUIRE_POSTGRES says there must be one."""
    given = os.environ.get("MSCC_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    binaries = server_binaries()
    if binaries is None:
        if os.environ.get("MSCC_REQUIRE_POSTGRES"):
            pytest.fail("MSCC_REQUIRE_POSTGRES is set but no PostgreSQL server binaries are installed")
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql): make test starts one when they are")
    with throwaway_postgres(binaries) as url:
        yield url
