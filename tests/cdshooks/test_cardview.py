"""Cards rendered the way the CDS Hooks Sandbox renders them, checked in headless Chromium: the markdown table is a
table, suggestions and links are buttons, the indicator shows, and no FHIR id or raw markdown reaches the page."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from service.cdshooks.cardview import card_html, cards_page
from tests.browser import dump_dom, screenshot
from tests.helpers import EXAMPLES, load_json
from tests.liveserver import serving

EXAMPLE = "14-order-sign-lumbar-xray-in-myeloma"


def page_app(html: str) -> FastAPI:
    app = FastAPI()
    app.get("/", response_class=HTMLResponse)(lambda: html)
    return app


def test_card_text_is_escaped_never_run() -> None:
    html = card_html({"summary": "<b>x</b>", "indicator": "info", "detail": "<script>alert(1)</script>", "source": {}})
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_an_example_card_renders_as_the_sandbox_shows_it(tmp_path: Path) -> None:
    response = load_json(EXAMPLES / "responses" / f"{EXAMPLE}.json")
    with serving(page_app(cards_page(EXAMPLE, response["cards"]))) as base:
        dom = dump_dom(base + "/")
        shot = screenshot(base + "/", tmp_path / "card.png")
    assert 'data-indicator="warning"' in dom
    assert "<table>" in dom
    assert "<td>8/10</td>" in dom
    assert "<td>18 Nov 2026</td>" in dom
    suggestions = [s["label"] for s in response["cards"][0]["suggestions"]]
    for label in suggestions:
        assert f">{label}</button>" in dom
    assert "| --- |" not in dom  # the markdown table was rendered, not shown raw
    assert "Observation/" not in dom
    assert "Condition/" not in dom
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
