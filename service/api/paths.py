"""`TolerantPaths`: a discovery URL registered with a trailing slash still works.

A CDS client given `https://cds.example.org/cds-services/` as its discovery URL calls
`.../cds-services//mscc-patient-view`. Doubled slashes are folded and a trailing slash is dropped before routing,
so discovery, hook calls and feedback answer the same whichever way the URL was written (no redirect, which a
browser client's CORS preflight would not follow).
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

_SLASHES = re.compile(r"/{2,}")


def tidy_path(path: str) -> str:
    tidy = _SLASHES.sub("/", path)
    return tidy.rstrip("/") or "/"


class TolerantPaths:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope.get("path", "")
            tidy = tidy_path(path)
            if tidy != path:
                scope = {**scope, "path": tidy, "raw_path": tidy.encode("latin-1", "replace")}
        await self.app(scope, receive, send)
