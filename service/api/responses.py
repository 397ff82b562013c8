"""`OrjsonResponse`: JSON rendered by orjson, for the answers on the hot path (a card with its FHIR suggestions)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
