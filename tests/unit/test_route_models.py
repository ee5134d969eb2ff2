"""Every API route says what it answers (issue 12, point 5).

A JSON route declares its response model (so the OpenAPI document and the answer agree and
nothing beyond the model leaves); a route that answers something else says so: 204 with no
body, or a document (PDF, HTML, CSV) with its media types listed under its 200 response, and
the schema of its JSON form when it has one.
"""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter
from fastapi.routing import APIRoute

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


def test_every_api_route_declares_what_it_answers() -> None:
    routes = api_routes()
    assert len(routes) > 60, "the routers were not found"
    missing = [
        f"{module}: {sorted(r.methods)} {r.path} ({r.endpoint.__name__})"
        for module, r in routes
        if r.response_model is None and r.status_code != 204 and not _declared_document(r)
    ]
    assert missing == []
