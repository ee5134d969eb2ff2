"""Every API route says what it answers (issue 12, point 5).

A JSON route declares its response model (so the OpenAPI document and the answer agree and
nothing beyond the model leaves); a route that answers something else says so: 204 with no
body, or a document (PDF, HTML, CSV) with its media types listed under its 200 response, and
the schema of its JSON form when it has one.
"""

from __future__ import annotations

import importlib
import pkgutil
import typing

from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel

import idrs.api


def api_routes() -> list[tuple[str, APIRoute]]:
    seen: set[int] = set()
    out: list[tuple[str, APIRoute]] = []
    for info in pkgutil.iter_modules(idrs.api.__path__):
        module = importlib.import_module(f"idrs.api.{info.name}")
        for value in vars(module).values():
            if isinstance(value, APIRouter) and id(value) not in seen:
                seen.add(id(value))
                out += [(info.name, r) for r in value.routes if isinstance(r, APIRoute)]
    return out


def _declared_document(route: APIRoute) -> bool:
    """A document route lists its media types; a JSON one among them carries its schema."""
    content = (route.responses or {}).get(200, {}).get("content", {})
    return bool(content) and all(not m.endswith("json") or v.get("schema")
                                 for m, v in content.items())


def _is_model(annotation: object) -> bool:
    """A Pydantic model, or a list/union of them: a ``dict[str, Any]`` or ``Any`` says
    nothing of the answer and does not count (FastAPI takes it from a return annotation)."""
    if isinstance(annotation, type):
        return issubclass(annotation, BaseModel)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return typing.get_origin(annotation) is not dict and bool(args) and all(map(_is_model, args))


def test_every_api_route_declares_what_it_answers() -> None:
    routes = api_routes()
    assert len(routes) > 60, "the routers were not found"
    missing = [
        f"{module}: {sorted(r.methods)} {r.path} ({r.endpoint.__name__})"
        for module, r in routes
        if not _is_model(r.response_model) and r.status_code != 204
        and not _declared_document(r)
    ]
    assert missing == []


def test_a_document_route_has_no_json_model() -> None:
    """A route that answers a document (or 204) sets no response model: FastAPI would
    otherwise take one from its return annotation and document a JSON body it never sends."""
    wrong = [f"{module}: {r.path}" for module, r in api_routes()
             if (r.status_code == 204 or _declared_document(r)) and r.response_model is not None]
    assert wrong == []


def test_the_openapi_document_names_a_schema_for_every_json_answer() -> None:
    from fastapi import FastAPI

    api = FastAPI()
    for _, route in api_routes():
        api.router.routes.append(route)
    doc = api.openapi()
    bare = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op.get("responses", {}).items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                named = schema is None or "$ref" in schema or "properties" in schema \
                    or "$ref" in schema.get("items", {})
                if status.startswith("2") and not named:
                    bare.append(f"{method.upper()} {path} {status}: {schema}")
    assert bare == []
