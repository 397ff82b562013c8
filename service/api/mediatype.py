"""`JsonBodiesOnly`: a CDS Hooks POST whose body is declared as something other than JSON is a 415.

It runs after `AuthenticateFirst` (404, then 401, then 415, then 400): an unauthenticated caller learns nothing
about what the service accepts. A POST without a Content-Type is left to the route, which reads it as JSON would
be read and answers 400 when it is not.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import CDS_PATHS, send_error
from service.api.hookroute import is_json_media_type


class JsonBodiesOnly:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope.get("path", "").startswith(CDS_PATHS):
            await self.app(scope, receive, send)
            return
        declared = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"content-type"), None)
        if declared is not None and declared.strip() and not is_json_media_type(declared):
            message = "the body must be JSON (Content-Type: application/json)"
            await send_error(send, 415, "unsupported_media_type", message, path=scope["path"])
            return
        await self.app(scope, receive, send)
