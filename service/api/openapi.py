"""The OpenAPI document as we serve it (`authoring/openapi.py` writes the same document to `openapi.yaml`).

FastAPI documents a 422 for every body or query validation error; outside the FHIR endpoints we answer those with
400 and an ErrorBody, so the generic 422 is replaced by that 400 in the document. Errors answered as FHIR JSON
(OperationOutcome) are documented with that media type alone.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_GENERIC = ("HTTPValidationError", "ValidationError")


def build_openapi(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, openapi_version="3.1.0"
    )
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            for response in responses.values():  # a response answered as FHIR JSON only (FastAPI adds a JSON twin)
                content = response.get("content", {})
                if "application/fhir+json" in content:
                    content.pop("application/json", None)
            generic = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if generic.get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
                responses.setdefault(
                    "400",
                    {
                        "description": "Invalid request parameters or body",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                    },
                )
    text = str(schema["paths"])
    components = schema.get("components", {}).get("schemas", {})
    for name in _GENERIC:
        if f"/{name}'" not in text and name in components:
            del components[name]
    return schema


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
