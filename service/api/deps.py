"""`Annotated` dependencies shared by the routers."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from service.errors import Unauthorized
from service.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def require_operator(request: Request, runtime: RuntimeDep) -> None:
    """With MSCC_OPERATOR_TOKEN set, the tester and operator endpoints need it (compared in constant time)."""
    expected = runtime.settings.operator_token
    if expected is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise Unauthorized("this endpoint needs the operator token: Authorization: Bearer <MSCC_OPERATOR_TOKEN>")


OperatorOnly = Depends(require_operator)
