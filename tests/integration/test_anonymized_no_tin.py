"""No route or page takes a TIN, name or address from an anonymized principal (issue 15.1).

A meta-test over every route of ``create_app``: each one that accepts an identifier (a path
parameter, query or body field named tin/tins/ssn/ein/…/name/last/street/…, or a page whose
handler reads such a form field) is called by a principal holding an active anonymized grant,
with a real TIN of the population in every identifier field, and must answer 403 without
running: API answers name ANONYMIZED_NO_IDENTIFIER, and every refusal is in the audit log.
The same principal still reaches their anonymized records by pseudonym. The same holds for a
principal holding a statistics grant (issue 15.2), who still runs their statistics.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from idrs.api.app import create_app
from idrs.audit.models import AuditEntry
from idrs.db import session_scope
from idrs.grants import anonymized
from idrs.web.security import SESSION_COOKIE, session_csrf
from tests.integration import factories as f
from tests.integration.grants_world import make_world
from tests.integration.test_anonymized_records import _anon_grant, _ready
from tests.integration.test_route_authorization import FIELD_VALUES, _request, _routes

IDENT = anonymized.IDENTIFIER_FIELD
#: page handlers that read an identifier from their form: ``form.get("tin")`` and the like
FORM_READ = re.compile(r"""form(?:\.get\(|\[)\s*["']([a-z_]+)["']""")


def _schema_fields(doc: dict[str, Any], schema: dict[str, Any], seen: int = 0) -> set[str]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    names = set(schema.get("properties", {}))
    for sub in list(schema.get("properties", {}).values()) + schema.get("anyOf", []):
        if seen < 4 and isinstance(sub, dict):
            names |= _schema_fields(doc, sub.get("items", sub), seen + 1)
    return names


def _identifier_fields(route, doc) -> set[str]:
    """The identifier fields a route accepts (path, query, body, form)."""
    names = set(re.findall(r"{(\w+)}", route.path))
    op = route.operation or {}
    names |= {p["name"] for p in op.get("parameters", [])}
    content = (op.get("requestBody") or {}).get("content", {})
    for media in content.values():
        names |= _schema_fields(doc, media.get("schema", {}))
    return {n for n in names if IDENT.match(n.lower())}


@pytest.fixture(params=["anonymized", "statistics"])
def world(app, monkeypatch, request):
    w = make_world(app, monkeypatch)
    _ready(w, "DT001")
    if request.param == "anonymized":
        _anon_grant(w, "DT001")
    else:
        from tests.integration.test_statistics import stats_grant

        stats_grant(w, "DT001", epsilon=1.0)
    w.kind = request.param  # type: ignore[attr-defined]
    api = create_app(app)
    with TestClient(api, follow_redirects=False) as client:
        yield w, api, client


def test_an_anonymized_principal_can_submit_no_tin_anywhere(world):
    w, api, client = world
    app = w.app
    doc = api.openapi()
    token = w.token("DT001")
    csrf = session_csrf(app, token)
    endpoints = {}
    from fastapi.routing import APIRoute, iter_route_contexts

    for rc in iter_route_contexts(api.routes):
        if isinstance(rc.original_route, APIRoute):
            endpoints[rc.path] = rc.original_route.endpoint
    checked, problems = [], []
    for r in _routes(api):
        fields = _identifier_fields(r, doc)
        if not r.api:
            src = inspect.getsource(endpoints[r.path])
            fields |= {n for n in FORM_READ.findall(src) if IDENT.match(n)}
            fields |= set(re.findall(r"\btins?\b", src))  # tin=v["tin"], tin=cmd.tin
            fields |= {n for n in inspect.signature(endpoints[r.path]).parameters if IDENT.match(n)}
        if not fields:
            continue
        url, query, body = _request(r, doc)
        url = url.replace(str(f.CARTER), f.CARTER)  # the TIN of a real taxpayer
        for n in fields:
            if f"{{{n}}}" not in r.path and r.method == "GET":
                query[n] = f.CARTER
        client.cookies.clear()
        if r.api:
            kw: dict[str, Any] = {"params": query, "headers": {"Authorization": f"Bearer {token}"}}
            if r.method in ("POST", "PUT", "PATCH"):
                body = dict(body or {}) if isinstance(body, dict) or body is None else body
                if isinstance(body, dict):
                    for n in fields:
                        if n not in r.path:
                            body[n] = [f.CARTER] if n.endswith("s") else f.CARTER
                kw["json"] = body
            resp = client.request(r.method, url, **kw)
            ok = resp.status_code == 403 and anonymized.NO_IDENTIFIER in {
                x["code"] for x in resp.json().get("reasons", [])
            }
        else:
            client.cookies.set(SESSION_COOKIE, token)
            if r.method == "GET":
                resp = client.get(url, params=query)
            else:
                form = {k: v for k, v in FIELD_VALUES.items() if isinstance(v, str)}
                form.update({n: f.CARTER for n in fields}, line=f"ENMOD {f.CARTER}")
                resp = client.request(r.method, url, data={**form, "csrf": csrf})
            ok = resp.status_code == 403
        checked.append(f"{r.method} {r.path} {sorted(fields)}")
        if not ok:
            problems.append(
                f"{r.method} {r.path} {sorted(fields)}: {resp.status_code} {resp.text[:160]}"
            )
    assert len(checked) >= 12, checked
    assert {"POST /research ['tin']", "POST /adjust ['tin']"} <= set(checked), checked
    assert any("/api/v1/accounts/{tin}/{command}" in c for c in checked)
    assert any(c.startswith("POST /api/v1/grants/exports") or "tins" in c for c in checked)
    assert not problems, "accepted an identifier from an anonymized principal:\n" + "\n".join(
        problems
    )
    # every refusal is recorded under the principal, with the code, and never with the TIN
    with session_scope(app.engine) as s:
        logged = [bytes(e.leaf_input).decode() for e in s.scalars(select(AuditEntry))]
    refused = [e for e in logged if anonymized.NO_IDENTIFIER in e and '"DT001"' in e]
    assert len(refused) >= len(checked)
    assert not any(f.CARTER in e or f.CARTER.replace("-", "") in e for e in refused)
    if w.kind == "statistics":
        # ... and the principal still runs statistics (and reaches no record)
        r = client.post(
            "/api/v1/statistics",
            json={"group_by": ["state"], "aggregate": "count", "epsilon": 0.1},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, r.text
        assert {"rows", "epsilon_spent", "budget_left", "accuracy"} <= set(r.json())
        r = client.get("/api/v1/anonymized/records", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403 and "NO_ANONYMIZED_GRANT" in r.text
        return
    # ... and the principal still reaches records by pseudonym
    r = client.get(
        "/api/v1/anonymized/records",
        params={"limit": 3},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    p = r.json()["records"][0]["pseudonym"] if r.json()["records"] else None
    assert {"records", "k", "suppressed"} <= set(r.json())
    if p:
        one = client.get(
            f"/api/v1/anonymized/records/{p}", headers={"Authorization": f"Bearer {token}"}
        )
        assert one.status_code == 200 and one.json()["record"]["pseudonym"] == p


def test_an_employee_without_an_anonymized_grant_is_not_affected(world):
    w, _, client = world
    w.add("EX002", "examiner", "900-40-0110")
    token = w.token("EX002")
    r = client.get(
        f"/api/v1/accounts/{f.CARTER}/ENMOD", headers={"Authorization": f"Bearer {token}"}
    )
    assert anonymized.NO_IDENTIFIER not in r.text  # refused for want of a case, not by the guard


def test_a_tin_hidden_in_a_repeated_parameter_or_a_free_field_is_refused(world):
    w, _, client = world
    h = {"Authorization": f"Bearer {w.token('DT001')}"}
    r = client.get(
        "/api/v1/anonymized/records", params=[("state", "OH"), ("state", f.CARTER)], headers=h
    )
    assert r.status_code == 403 and anonymized.NO_IDENTIFIER in r.text
    r = client.post(
        "/api/v1/grants",
        json={
            "principal": "DT001",
            "purpose": f"about {f.CARTER.replace('-', '')}",
            "basis": "x",
            "commands": ["ENMOD"],
            "classes": ["identity"],
            "population": "all",
            "start": "2026-03-02",
        },
        headers=h,
    )
    assert r.status_code == 403 and anonymized.NO_IDENTIFIER in r.text
    assert f.CARTER not in r.text and f.CARTER.replace("-", "") not in r.text
