"""Extreme values answer 4xx, never 500, on every operation of the API (SQLite, PostgreSQL).

Walks the application's own OpenAPI document: every integer parameter (path or query) and
every integer field of a JSON body gets 2**63, 2**70 and -2**63-1; every date or date-time
gets 9999-12-31 and 0001-01-01 (the other fields hold ordinary values). The caller is a
signed-in employee with broad roles, so the request reaches the service behind the route.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from idrs.api.app import create_app
from idrs.people import service, totp
from tests.integration import factories as f
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture

BIG_INTS = [2**63, 2**70, -(2**63) - 1]
DATES = {"date": ["9999-12-31", "0001-01-01"],
         "date-time": ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"]}
ROLES = "examiner,manager,privacy_analyst,privacy_officer,auditor,security_admin"
#: path values that let a request get past its first check to where the number is used
KNOWN = {"tin": f.CARTER, "command": "TXMOD"}


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [_resolve(spec, s) for s in schema[key] if s.get("type") != "null"]
            if options:
                return options[0]
    return schema


def _ordinary(spec: dict[str, Any], schema: dict[str, Any]) -> Any:
    s = _resolve(spec, schema)
    if "enum" in s:
        return s["enum"][0]
    kind, fmt = s.get("type"), s.get("format")
    if fmt in DATES:
        return "2026-03-02" if fmt == "date" else "2026-03-02T12:00:00Z"
    if kind == "integer":
        return max(1, int(s.get("minimum", 1)))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        return {k: _ordinary(spec, v) for k, v in s.get("properties", {}).items()
                if k in s.get("required", [])}
    return "X1" if s.get("maxLength", 9) >= 2 else "X"


def _extremes(spec: dict[str, Any], schema: dict[str, Any]) -> list[Any]:
    s = _resolve(spec, schema)
    if s.get("type") == "integer":
        return BIG_INTS
    return DATES.get(s.get("format", ""), [])


def _cases(spec: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, what is extreme, request kwargs) for every extreme value."""
    out = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            params = op.get("parameters", [])
            base_path = {p["name"]: KNOWN.get(p["name"], _ordinary(spec, p["schema"]))
                         for p in params if p["in"] == "path"}
            base_query = {p["name"]: _ordinary(spec, p["schema"]) for p in params
                          if p["in"] == "query" and p.get("required")}
            body_schema = (op.get("requestBody", {}).get("content", {})
                           .get("application/json", {}).get("schema"))
            body = _ordinary(spec, body_schema) if body_schema else None

            def case(what: str, pv: dict, qv: dict, bv: Any) -> None:
                url = re.sub(r"\{(\w+)\}", lambda m: str(pv[m.group(1)]), path)
                kw: dict[str, Any] = {"params": qv}
                if bv is not None:
                    kw["json"] = bv
                out.append((method.upper(), url, what, kw))

            if "year" in {p["name"] for p in params} and "{command}" in path:
                base_query = {**base_query, "year": 2023, "case": "C-1"}
            for p in params:
                for v in _extremes(spec, p["schema"]):
                    if p["in"] == "path":
                        case(f"{p['name']}={v}", {**base_path, p["name"]: v}, base_query, body)
                    elif p["in"] == "query":
                        case(f"{p['name']}={v}", base_path, {**base_query, p["name"]: v}, body)
            if body_schema:
                props = _resolve(spec, body_schema).get("properties", {})
                for name, sub in props.items():
                    for v in _extremes(spec, sub):
                        case(f"body.{name}={v}", base_path, base_query, {**body, name: v})
    return out


def test_no_extreme_value_is_answered_with_a_server_error(app):
    f.carter_household(app)
    creds = service.create_employee(app, unax_attested_at=app.clock.now(), seid="XT001",
                                    name="X", tin="900-46-0001", roles=ROLES)
    app.settings = app.settings.model_copy(update={"research_rate": "off"})
    api = create_app(app)
    failures = []
    with TestClient(api, raise_server_exceptions=False) as c:
        otp = totp.code_at(creds["totp_secret"], app.clock.now())
        token = c.post("/api/v1/sessions", json={"seid": "XT001", "password": creds["password"],
                                                 "otp": otp}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        cases = _cases(c.get("/api/v1/openapi.json").json())
        assert len(cases) > 40
        for method, url, what, kw in cases:
            if method == "DELETE" and url.endswith("/sessions/current"):
                continue  # would end the session the walk runs in
            r = c.request(method, url, headers=headers, **kw)
            if r.status_code >= 500:
                failures.append(f"{method} {url} {what}: {r.status_code} {r.text[:200]}")
    assert not failures, f"{len(failures)} server errors:\n" + "\n".join(failures)


def test_the_values_found_by_hand_are_refused_with_4xx(app):
    """The cases the issue names: a version of 2**70, as_of=9999-12-31, an oversight period
    of 0001 to 9999, an id of 2**63."""
    f.carter_household(app)
    creds = service.create_employee(app, unax_attested_at=app.clock.now(), seid="XT002",
                                    name="X", tin="900-46-0002", roles=ROLES)
    f.open_case(app, "XT002", f.CARTER, "C-2")
    with TestClient(create_app(app), raise_server_exceptions=False) as c:
        otp = totp.code_at(creds["totp_secret"], app.clock.now())
        token = c.post("/api/v1/sessions", json={"seid": "XT002", "password": creds["password"],
                                                 "otp": otp}).json()["token"]
        h = {"Authorization": f"Bearer {token}"}
        answers = [
            c.get(f"/api/v1/accounts/{f.CARTER}/ENMOD",
                  params={"case": "C-2", "as_of": "9999-12-31"}, headers=h),
            c.post(f"/api/v1/accounts/{f.CARTER}/adjustments", headers=h,
                   json={"command": "ADJ54", "case": "C-2", "tax_year": 2023, "tc": "290",
                         "amount": 1, "base_version": 2**70}),
            c.get("/api/v1/oversight/report", headers=h,
                  params={"unit": "HQ", "from": "0001-01-01", "to": "9999-12-31"}),
            c.post(f"/api/v1/adjustments/{2**63}/approve", headers=h, json={}),
        ]
    for r in answers:
        assert 400 <= r.status_code < 500, (r.request.url, r.status_code, r.text[:300])
