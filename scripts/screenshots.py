"""Screenshots for the docs (headless Chromium, loopback only): example cards as the CDS Hooks Sandbox shows them.

.venv/bin/python scripts/screenshots.py     # writes docs/images/cards.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastapi import FastAPI  # noqa: E402
from fastapi.responses import HTMLResponse  # noqa: E402

from service.cdshooks.cardview import cards_page  # noqa: E402
from tests.browser import screenshot  # noqa: E402
from tests.liveserver import serving  # noqa: E402

EXAMPLES = ["01-mscc-breast-cancer-leg-weakness", "14-order-sign-lumbar-xray-in-myeloma"]


def main() -> int:
    cards = []
    for name in EXAMPLES:
        cards += json.loads((ROOT / "fhir_examples/responses" / f"{name}.json").read_text(encoding="utf-8"))["cards"]
    app = FastAPI()
    page = cards_page("Example cards (fhir_examples 01 and 14)", cards)
    app.get("/", response_class=HTMLResponse)(lambda: page)
    out = ROOT / "docs/images/cards.png"
    with serving(app) as base:
        screenshot(base + "/", out, width=1040, height=1260)
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
