"""The OpenAPI document FastAPI generates, completed: each operation's description and
examples (``ops_service.py``, ``ops_jobs.py``), the causes of its 429/503 answers
(``causes.py``), and the schemas of the job error codes, the API error names and the job
event stream (``components.py``), referenced from the error shapes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, routing
from fastapi.routing import APIRoute

from app.apidoc import components
from app.apidoc.causes import response, shared_causes
from app.apidoc.op import Op
from app.apidoc.operations import OPERATIONS

Json = dict[str, Any]
METHODS = ("get", "put", "post", "delete", "patch")
EVENTS_PATH = "/v1/jobs/{job_id}/events"


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (and from ``app.openapi()``)."""
    generate = app.openapi

    def openapi() -> Json:
        if app.openapi_schema is None:
            document(app, generate())
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def _api_routes(app: FastAPI) -> Iterator[tuple[APIRoute, str]]:
    """Every APIRoute with its path as served (FastAPI >= 0.160 nests included routers)."""
    contexts = getattr(routing, "iter_route_contexts", None)
    if contexts is None:
        yield from ((r, r.path_format) for r in app.routes if isinstance(r, APIRoute))
        return
    for context in contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context.original_route, context.path_format


def operations(app: FastAPI) -> dict[str, tuple[APIRoute, str, str]]:
    """ "VERB /path" -> (route, path, verb) of every operation in the document."""
    out: dict[str, tuple[APIRoute, str, str]] = {}
    for route, path in _api_routes(app):
        if route.include_in_schema:
            for method in sorted(route.methods or ()):
                if method.lower() in METHODS:
                    out[f"{method} {path}"] = (route, path, method.lower())
    return out


def document(app: FastAPI, spec: Json) -> None:
    schemas: Json = spec.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in components.stream_event_schemas().items():
        schemas.setdefault(name, schema)
    schemas["JobErrorCode"] = components.job_error_code_schema()
    schemas["ApiError"] = components.api_error_schema()
    schemas["ErrorBody"]["properties"]["error"] = {"$ref": "#/components/schemas/ApiError"}
    schemas["JobErrorRead"]["properties"]["code"] = {"$ref": "#/components/schemas/JobErrorCode"}
    for key, (route, path, method) in operations(app).items():
        op = spec["paths"][path][method]
        doc = OPERATIONS.get(key)
        if doc is not None:
            _describe(op, doc)
        causes = [*shared_causes(route), *(doc.causes if doc else ())]
        for status in sorted({c.status for c in causes}):
            mine = [c for c in causes if c.status == status]
            op["responses"][str(status)] = response(mine, op["responses"].get(str(status)))
    # The stream itself keeps no schema (clients and schemathesis parse it into events);
    # each event's data has one, by name, in `x-events`.
    events = spec["paths"][EVENTS_PATH]["get"]["responses"]["200"]
    events["description"] = "`event: <name>` and `data: <JSON>` lines; see `x-events`."
    events["x-events"] = {
        name: {"oneOf": [{"$ref": f"#/components/schemas/{m.__name__}"} for m in models]}
        for name, models in components.STREAM_EVENTS.items()
    } | {"error": {"oneOf": [{"$ref": "#/components/schemas/ErrorBody"}]}}


def _describe(op: Json, doc: Op) -> None:
    own = op.get("description")
    op["description"] = f"{doc.text}\n\n{own}" if own else doc.text
    if doc.request is not None:
        media = op["requestBody"]["content"]["application/json"]
        media["examples"] = {"example": {"value": doc.request}}
    if doc.response is not None:
        status = next(s for s in sorted(op["responses"]) if s.startswith("2"))
        content = op["responses"][status].setdefault("content", {})
        media_type = next(iter(content), "application/json")
        content.setdefault(media_type, {})["examples"] = {"example": {"value": doc.response}}
