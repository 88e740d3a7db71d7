"""The error answers in the OpenAPI document: every operation lists the 4xx/5xx answers the
server gives (each a JSON error body, `ERROR_SCHEMA`), so a client generator or a schema
fuzzer (schemathesis) knows them; FastAPI's own 422 shape is replaced by shipyard's.

    document_errors(app)   # once, after the routes; app.openapi() then includes them
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "type"],
    "properties": {
        "error": {"type": "string", "description": "what went wrong, for a person"},
        "type": {"type": "string", "description": "the error's class, e.g. NotFoundError"},
        "field": {"type": "string", "description": "the input at fault, when one is"},
        "limit": {"description": "the limit exceeded, when one was"},
        "request_id": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object"}},
    },
    "additionalProperties": True,
}

ERRORS: dict[str, str] = {
    "400": "Bad input: the body names the field",
    "401": "No valid credentials (when the server requires them)",
    "403": "The credentials lack the scope or the endpoint",
    "404": "No such resource (or route)",
    "405": "Method not allowed: the `Allow` header lists those that are",
    "409": "Conflicts with the stored state (exists already, a gate blocks it)",
    "413": "The body is over the server's limit (named in `limit`)",
    "422": "The request does not match the route's schema or the model's signature",
    "429": "Rate limit exceeded: retry after `Retry-After` seconds",
    "503": "A store or the model is unavailable for now",
}

# the request bodies of the data plane's POST routes (FastAPI sees only a `Request`)
PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["instances"],
                "properties": {
                    "instances": {
                        "type": "array",
                        "items": {"type": "object"},
                        "description": "rows as {feature: value} objects",
                    },
                    "probabilities": {"type": "boolean", "default": False},
                },
            },
            "example": {"instances": [{"feature_a": 1.0, "feature_b": 2.0}]},
        }
    },
}
V2_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "id": {"type": "string"},
                    "inputs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "shape": {"type": "array", "items": {"type": "integer"}},
                                "datatype": {"type": "string"},
                                "data": {"type": "array"},
                            },
                        },
                    },
                    "outputs": {"type": "array", "items": {"type": "object"}},
                },
            }
        }
    },
}


_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
_REF = {"$ref": "#/components/schemas/Error"}


def add_error_responses(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` (an OpenAPI document) with the error answers on every operation."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    for path_item in doc.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for code, description in ERRORS.items():
                responses[code] = {
                    "description": description,
                    "content": {"application/json": {"schema": _REF}},
                }
                if code == "405":
                    responses[code]["headers"] = {
                        "Allow": {"schema": {"type": "string"}, "description": "e.g. GET, HEAD"}
                    }
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422, now replaced
        if unused in schemas and f'"#/components/schemas/{unused}"' not in _text(doc, unused):
            del schemas[unused]
    return doc


def _text(doc: dict[str, Any], skip: str) -> str:
    """The document as text without the schema `skip` (to see whether anything refers to it)."""
    import json

    schemas = doc["components"]["schemas"]
    rest = {k: v for k, v in schemas.items() if k != skip}
    return json.dumps({"paths": doc.get("paths", {}), "schemas": rest})


def document_errors(app: Any) -> None:
    """Make `app.openapi()` include the error answers (built once, as FastAPI caches it)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_error_responses(build())
        return app.openapi_schema  # type: ignore[no-any-return]

    app.openapi = openapi
