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
    workbench()
    return 0


def workbench() -> None:
    """The workbench on a copy of the rules with a draft that lowers the pain-score threshold from 7 to 6."""
    import tempfile

    from authoring.workbench import install_workbench
    from service.app import create_app
    from service.config import Settings
    from tests.helpers import add_score_6_draft, copy_rules

    with tempfile.TemporaryDirectory() as tmp:
        rules = add_score_6_draft(copy_rules(Path(tmp)))
        settings = Settings(dev_mode=True, database_url="sqlite://", rules_dir=rules)
        pages = {
            "workbench-patient.png": ("/workbench/patients/example%3A04-myeloma-thoracic-pain-score-8", 3000),
            "workbench-diff.png": ("/workbench/diff?b=spinal-metastasis-pain@3.1.0", 420),
        }
        with serving(install_workbench(create_app(settings))) as base:
            for name, (path, height) in pages.items():
                screenshot(base + path, ROOT / "docs/images" / name, width=1400, height=height, wait_ms=5000)
                print(f"wrote docs/images/{name}")


if __name__ == "__main__":
    raise SystemExit(main())
