"""`/docs` works with no internet: Swagger UI's assets come from a package, and headless Chromium, which can reach
nothing but loopback here, renders every operation."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.browser import dump_dom, require_chromium
from tests.liveserver import serving


def test_the_docs_page_loads_nothing_from_elsewhere(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href|url)\s*[:=]\s*["\']([^"\']+)["\']', page.text)
    assert urls
    assert all(u.startswith("/") for u in urls), urls
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert client.get(f"/docs/assets/{asset}").status_code == 200


def test_the_docs_render_every_operation_in_a_browser_without_internet(make_app) -> None:
    require_chromium()
    with serving(make_app()) as base:
        dom = dump_dom(f"{base}/docs")
    assert 'class="swagger-ui"' in dom
    operations = set(re.findall(r'data-path="([^"]+)"', dom))
    assert {
        "/cds-services",
        "/cds-services/{service_id}",
        "/cds-services/{service_id}/feedback",
        "/evaluate",
    } <= operations
    assert "btn authorize" in dom  # the Authorize button, so "Try it out" can send the operator token


def test_every_operator_endpoint_declares_the_operator_token(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["operatorToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "MSCC_OPERATOR_TOKEN, when the service sets one (always in production): Bearer <token>",
    }
    guarded = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if {"operatorToken": []} in operation.get("security", [])
    }
    assert guarded == {"POST /evaluate", "POST /rules/reload", "GET /reports/rules", "GET /metrics"}
    assert not any(path.startswith("/cds-services") for path in (g.split(" ", 1)[1] for g in guarded))
