"""The web pages under bad input, on SQLite and PostgreSQL (issue 8, "Bad input").

Every state-changing page route is found by walking the mounted web routers (a new form cannot
escape these tests: it fails ``test_every_post_route_has_a_sample`` until it has a sample form
here), and each one, posted by an employee who holds its role:

- without its CSRF token, with a wrong one or with another session's: 403, nothing changed
  (every table compared row by row, the audit log included); the same form with the right
  token does reach the route (so the refusal was the token's);
- with a session that expired while the form was open: 401 and nothing changed but the
  recorded expiry;
- with a body over the form limit (64 KiB, read by the page) or over the request limit
  (1 MiB, refused before any handler): 413, nothing changed;
- with JSON, multipart, plain text or no content type: 415; with bytes that are not UTF-8 or
  too many fields: 400; nothing changed.

Script typed into the fields that are shown back (the research prompt, the sign-in SEID, the
alert's notes and dismissal reason, the grant request and revocation, the admin forms, the
agreement, the training record, the adjustment form, …) comes back escaped, never as markup.

File-serving routes never leave their folder or their table: /static with ``..`` in every
spelling, and notice / export ids with traversal in them.

(The API's malformed JSON, wrong content type and oversized body are
tests/integration/test_api_hardening.py.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import select

import idrs.models  # noqa: F401 - every package's tables in Base.metadata
from idrs.api.app import create_app
from idrs.audit.checkpoint import ensure_signing_key
from idrs.audit.events import Actor
from idrs.context import App
from idrs.db import Base, session_scope
from idrs.detection.models import Alert
from idrs.grants import service as grants
from idrs.people import auth, totp
from idrs.people import service as people
from idrs.web import (
    admin_pages,
    analysis_pages,
    disclosure_pages,
    grant_pages,
    pages,
    report_pages,
    routes,
)
from idrs.web.render import MAX_FORM, WebRoute
from idrs.web.security import PRE_CSRF_COOKIE, SESSION_COOKIE, session_csrf
from tests import aio
from tests.conftest import BACKENDS, Frozen
from tests.integration import factories as f
from tests.integration.audit_helpers import all_leaves
from tests.integration.factories import cheap_argon2  # noqa: F401 - autouse fixture

OP = "os:test"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
STALE = "did not come from idrs"  # the CSRF refusal's message (web/security.py BAD_CSRF)
ALERT = "A700001"
WEB_MODULES = (routes, pages, admin_pages, grant_pages, report_pages, disclosure_pages,
               analysis_pages)
PAYLOADS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
#: what must never come back (compared in lower case: some fields are upper-cased)
RAW = ("<script>alert(1)", "<img src=x")
#: seid → (roles, unit, kind)
STAFF: dict[str, tuple[str, str, str]] = {
    "EX1": ("examiner", "U1", "employee"),
    "MG1": ("manager", "U1", "employee"),
    "CS1": ("csr", "U1", "employee"),
    "SA1": ("security_admin", "U1", "employee"),
    "SA2": ("security_admin", "U1", "employee"),
    "PA1": ("privacy_analyst", "PRIV", "employee"),
    "PO1": ("privacy_officer", "PRIV", "employee"),
    "AO1": ("authorizing_official", "PRIV", "employee"),
    "AU1": ("auditor", "PRIV", "employee"),
    "CT1": ("examiner", "U1", "contractor"),
}


@dataclass(frozen=True)
class Sample:
    """Who posts a route's form, and a plausible form (the CSRF field is added per request)."""

    seid: str | None  # None: the public sign-in form
    form: dict[str, str] = field(default_factory=dict)


#: One plausible form per state-changing page route, posted by someone holding its role.
#: Cheap where the real thing is slow (the oversight report gets a bad grant number).
SAMPLES: dict[str, Sample] = {
    "/signin": Sample(None, {"seid": "EX1", "password": "not it", "otp": "000000",
                             "next": "/research"}),
    "/signout": Sample("EX1"),
    "/research": Sample("EX1", {"line": f"ENMOD {f.CARTER} case=C-31"}),
    "/audit/verify": Sample("AU1"),
    "/audit/export": Sample("AU1"),
    "/adjustments/{adjustment_id}/{decision}": Sample("MG1", {"note": "checked"}),
    "/adjust": Sample("EX1", {"tin": f.CARTER, "command": "ADJ54", "case": "C-31",
                              "contact": "", "reason": "penalty abated", "tax_year": "2023",
                              "tc": "291", "amount": "10.00", "action_code": "", "date": "",
                              "street": "", "city": "", "state": "", "zip": ""}),
    "/alerts/{alert_id}/{action}": Sample("PA1", {"note": "looked at it"}),
    "/investigations/{case_id}/{action}": Sample("SA1", {"reason": "taken",
                                                         "outcome": "substantiated"}),
    "/oversight": Sample("PO1", {"grant": "not a number", "unit": "", "seids": ""}),
    "/admin/unlock": Sample("SA1", {"seid": "CS1"}),
    "/admin/employees/{seid}/profile": Sample("SA1", {"role_csr": "1", "code_ENMOD": "1",
                                                      "scopes": "", "note": "narrower"}),
    "/admin/employees/{seid}/deactivate": Sample("SA1"),
    "/admin/employees/{seid}/reactivate": Sample("SA1"),
    "/admin/units/{code}/ceiling": Sample("SA1", {"code_ENMOD": "1", "code_IMFOL": "1"}),
    "/admin/changes/{change_id}/confirm": Sample("SA2", {"note": "ok"}),
    "/admin/changes/{change_id}/reject": Sample("SA2", {"note": "no"}),
    "/grants/new": Sample("MG1", {"principal": "CT1", "purpose": "migration support",
                                  "basis": "IRC 6103(n)", "commands": "ENMOD",
                                  "classes": "identity", "population": "all",
                                  "start": "2026-03-03", "days": "90", "daily_limit": "",
                                  "agreement": ""}),
    "/grants/{grant_id}/approve": Sample("PO1", {"otp": "000000"}),
    "/grants/{grant_id}/revoke": Sample("PO1", {"reason": "the detail ended"}),
    "/grants/{grant_id}/end": Sample("AO1", {"reason": "the detail ended"}),
    "/grants/{grant_id}/renew": Sample("MG1", {"start": "", "days": "30"}),
    "/agreements": Sample("PO1", {"title": "Confidentiality agreement", "text": "Version 2."}),
    "/agreements/{agreement_id}/sign": Sample("CT1", {"otp": "000000"}),
    "/training/attest": Sample("CT1", {"otp": "000000"}),
    "/training/record": Sample("PO1", {"seid": "CT1", "what": "clearance", "note": "seen"}),
    "/reports/weekly/certify": Sample("MG1", {"unit": "U1", "week": "2026-03-02"}),
    "/taxpayers": Sample("PA1", {"tin": f.CARTER}),
    "/notices": Sample("PA1", {"alert": ALERT}),
    "/disclosures/{batch_id}/{decision}": Sample("PO1"),
    "/analysis/records": Sample("CT1", {"r_limit": "5", "r_year": "2023", "r_status": "MFJ",
                                        "r_state": "OH", "r_zip3": "454"}),
    "/analysis/statistics": Sample("CT1", {"s_aggregate": "mean", "g_state": "1",
                                           "s_column": "agi", "s_lo": "0", "s_hi": "200000",
                                           "s_year": "2023", "s_state": "OH",
                                           "s_epsilon": "0.1"}),
}


class World:
    """Staff of every role, the Carters with a case, an agreement, a pending grant, an alert."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.api: FastAPI = create_app(app)
        self.creds: dict[str, dict[str, str]] = {}
        self.ids: dict[str, str] = {}

    def token(self, seid: str) -> str:
        """A new web session (the clock moves one TOTP step: no code serves twice)."""
        self.app.clock.advance(seconds=30)  # type: ignore[attr-defined]
        code = totp.code_at(self.creds[seid]["totp_secret"], self.app.clock.now())
        return auth.sign_in(self.app, seid, self.creds[seid]["password"], code, "web").token

    def client(self, seid: str | None = None) -> tuple[TestClient, str]:
        """A browser of ``seid`` (signed in) and its form token; anonymous when None."""
        c = TestClient(self.api, follow_redirects=False)
        if seid is None:
            return c, ""
        token = self.token(seid)
        c.cookies.set(SESSION_COOKIE, token)
        return c, session_csrf(self.app, token)

    def url(self, path: str) -> str:
        return path.format(**self.ids)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Frozen, World]]]:
    """The world, built once per backend for the module (each test changes a copy)."""
    built: dict[str, tuple[Frozen, World]] = {}
    yield built
    for frozen, _ in built.values():
        frozen.drop()


@pytest.fixture(params=BACKENDS)
def w(request: pytest.FixtureRequest, worlds: dict[str, tuple[Frozen, World]],
      tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[World]:
    backend = request.param
    if backend not in worlds:
        with Frozen.build(backend, tmp_path_factory.mktemp(f"world-{backend}"), request) as (frozen, a):
            worlds[backend] = (frozen, _build(a))
    frozen, built = worlds[backend]
    with frozen.copy(tmp_path) as a:
        world = World(a)
        world.creds, world.ids = dict(built.creds), dict(built.ids)
        yield world


def _build(app: App) -> World:
    ensure_signing_key(app.settings.home, app.settings.audit_origin)
    f.carter_household(app)
    for unit in ("U1", "PRIV"):
        people.create_unit(app, unit, actor=OP)
    world = World(app)
    for n, (seid, (roles, unit, kind)) in enumerate(STAFF.items()):
        world.creds[seid] = people.create_employee(
            app, seid=seid, name=f"Person {seid}", tin=f"900-46-{n + 1:04d}", roles=roles,
            unit=unit, kind=kind, home_org="Acme Consulting" if kind != "employee" else None,
            unax_attested_at=app.clock.now() if kind == "employee" else None, actor=OP,
        )
    f.open_case(app, "EX1", f.CARTER, "C-31")
    actor = Actor(OP)
    agreement = grants.add_agreement(app, title="Confidentiality agreement",
                                     text="I will keep taxpayer information confidential.",
                                     actor=actor)
    grant = grants.request_grant(
        app, principal="CT1", purpose="modernization support", basis="IRC 6103(n)",
        commands="ENMOD", classes="identity", population="all",
        start=app.clock.now().date() + timedelta(days=1), days=90, actor=actor,
    )
    now = app.clock.now()
    with session_scope(app.engine) as s:
        s.add(Alert(alert_id=ALERT, seid="EX1", unit="U1", day=now.date(), score=9.0,
                    category="curiosity", signals="[]", audit_indexes="[]", taxpayers="[]",
                    state="open", created_at=now, updated_at=now))
    world.ids = {
        "adjustment_id": "1", "decision": "approve", "alert_id": ALERT, "action": "assign",
        "case_id": f"INV-{ALERT}",
        "seid": "CS1", "code": "U1", "change_id": "1", "batch_id": "D-0000000000000000",
        "grant_id": str(grant.grant_id), "agreement_id": str(agreement.agreement_id),
    }
    return world


# -- helpers ---------------------------------------------------------------------------------


def _post_routes(api: FastAPI) -> list[str]:
    """Every state-changing page route mounted on ``api`` (the sign-out last: it ends a session)."""
    found = {
        rc.path
        for rc in iter_route_contexts(api.routes)
        if isinstance(rc.original_route, WebRoute) and "POST" in (rc.methods or ())
    }
    return sorted(found, key=lambda p: (p == "/signout", p))


def _snapshot(app: App, skip: frozenset[str] = frozenset({"signin_session"})) -> dict[str, Any]:
    """Every row of every table (the sign-in sessions' last-seen times move on any request)."""
    out: dict[str, Any] = {}
    with app.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in skip:
                continue
            out[table.name] = sorted(repr(tuple(row)) for row in conn.execute(select(table)))
    return out


def _changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [name for name in before if before[name] != after.get(name)]


def _types(app: App, since: int = 0) -> list[str]:
    return [json.loads(leaf)["type"] for leaf in all_leaves(app)[since:]]


def _log_size(app: App) -> int:
    return len(all_leaves(app))


def _form(sample: Sample, csrf: str | None) -> dict[str, str]:
    return {**sample.form, **({"csrf": csrf} if csrf is not None else {})}


def _post(c: TestClient, url: str, form: dict[str, str]) -> Any:
    """POST ``form`` as a browser does: urlencoded, with its content type even when empty."""
    return c.post(url, content=urlencode(form).encode(),
                  headers={"content-type": "application/x-www-form-urlencoded"})


def _raw_absent(text: str, where: str) -> None:
    low = text.lower()
    for raw in RAW:
        assert raw not in low, f"{where}: the raw markup {raw!r} came back"


def _esc(text: str) -> str:
    """``text`` as it must appear on a page: HTML-escaped."""
    return str(escape(text))


def _escaped(text: str, payload: str) -> bool:
    """``payload`` (or the first 16 characters a SEID field keeps) is on the page, escaped."""
    return _esc(payload) in text or _esc(payload[:16]) in text


def _page(c: TestClient, r: Any) -> str:
    """The page a form's answer shows: its own, or the one it redirects to."""
    if r.status_code == 303:
        return str(c.get(r.headers["location"]).text)
    return str(r.text)


# -- the routes ------------------------------------------------------------------------------


def test_every_post_route_has_a_sample(w):
    mounted = _post_routes(w.api)
    declared = {
        rc.path
        for m in WEB_MODULES
        for rc in iter_route_contexts(m.router.routes)
        if "POST" in (rc.methods or ())
    }
    assert set(mounted) == declared, "a web router is not mounted, or a route is mounted twice"
    assert len(mounted) >= 28
    missing = sorted(set(mounted) - set(SAMPLES))
    assert not missing, f"state-changing page routes without a sample form here: {missing}"
    assert not set(SAMPLES) - set(mounted), "a sample for a route that no longer exists"
    for path in mounted:
        w.url(path)  # every path parameter has a value


# -- CSRF --------------------------------------------------------------------------------------


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(w):
    app = w.app
    users = {seid: w.client(seid) for seid in {s.seid for s in SAMPLES.values() if s.seid}}
    for path in _post_routes(w.api):
        sample, url = SAMPLES[path], w.url(path)
        before = _snapshot(app)
        if sample.seid is None:  # the sign-in form: a pre-session token, double-submitted
            anon, _ = w.client()
            cases = [
                ({}, {}),
                ({}, {"csrf": "x" * 32}),
                ({PRE_CSRF_COOKIE: "a" * 32}, {"csrf": "b" * 32}),
                ({PRE_CSRF_COOKIE: "a" * 32}, {}),
            ]
            for cookies, extra in cases:
                anon.cookies.clear()
                for k, v in cookies.items():
                    anon.cookies.set(k, v)
                r = _post(anon, url, {**sample.form, **extra})
                assert r.status_code == 403 and STALE in r.text, (path, cookies, extra)
        else:
            c, token = users[sample.seid]
            other = next(t for s, (_, t) in users.items() if s != sample.seid)
            for csrf in (None, "", "0" * 64, token[:-1] + ("0" if token[-1] != "0" else "1"),
                         other):
                r = _post(c, url, _form(sample, csrf))
                assert r.status_code == 403, (path, csrf, r.status_code, r.text[:300])
                assert STALE in r.text, (path, r.text[:300])
                assert "<h1>Form refused</h1>" in r.text
        changed = _changed(before, _snapshot(app))
        assert not changed, f"POST {path} without its token changed {changed}"

    # the same forms with the right token reach their routes: the refusals were the token's
    for path in _post_routes(w.api):
        sample, url = SAMPLES[path], w.url(path)
        if sample.seid is None:
            anon, _ = w.client()
            anon.cookies.set(PRE_CSRF_COOKIE, "c" * 32)
            r = _post(anon, url, _form(sample, "c" * 32))
            assert r.status_code == 401 and "AUTH_FAILED" in r.text, r.text[:300]
            continue
        c, token = users[sample.seid]
        r = _post(c, url, _form(sample, token))
        assert STALE not in r.text and r.status_code != 401, (path, r.status_code, r.text[:300])


# -- an expired session --------------------------------------------------------------------------


def test_a_session_that_expired_mid_form_is_401_and_changes_nothing(w):
    app = w.app
    idle = app.settings.session_idle_minutes
    skip = frozenset({"signin_session", "audit_entry", "audit_node", "audit_checkpoint"})
    checked = 0
    for path in _post_routes(w.api):
        sample, url = SAMPLES[path], w.url(path)
        if sample.seid is None:
            continue  # the sign-in form needs no session
        c, token = w.client(sample.seid)
        assert c.get("/research").status_code == 200  # the form was open, the session live
        app.clock.advance(minutes=idle + 1)  # type: ignore[attr-defined]
        before, size = _snapshot(app, skip), _log_size(app)
        r = _post(c, url, _form(sample, token))
        assert r.status_code == 401, (path, r.status_code, r.text[:300])
        assert "expired" in r.text and "nothing was done" in r.text, (path, r.text[:300])
        assert "SESSION_EXPIRED" in r.text
        assert not _changed(before, _snapshot(app, skip)), path
        # only the expiry itself is recorded, never the form's action
        assert _types(app, size) == ["auth:session:expire"], (path, _types(app, size))
        # the browser forgets the dead session; the next page asks for a sign-in
        dropped = [h for h in r.headers.get_list("set-cookie")
                   if h.startswith(f"{SESSION_COOKIE}=") and "Max-Age=0" in h]
        assert dropped, (path, r.headers.get_list("set-cookie"))
        r = c.get("/research")
        assert r.status_code == 303 and r.headers["location"].startswith("/signin")
        checked += 1
    assert checked == len(SAMPLES) - 1


# -- script in echoed fields -----------------------------------------------------------------


def test_script_in_the_signin_seid_and_the_research_prompt_comes_back_escaped(w):
    anon, _ = w.client()
    for payload in PAYLOADS:
        page = anon.get("/signin")
        pre = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        r = _post(anon, "/signin", {"csrf": pre, "seid": payload, "password": "x",
                                    "otp": "000000", "next": payload})
        assert r.status_code == 401
        _raw_absent(r.text, "sign-in")
        assert _escaped(r.text, payload), r.text  # the SEID is shown back in its field
    c, token = w.client("EX1")
    for payload in PAYLOADS:
        r = _post(c, "/research", {"csrf": token, "line": payload})
        assert r.status_code == 400
        _raw_absent(r.text, "research prompt")
        assert r.text.count(_esc(payload)) >= 2  # the prompt and the history
        quoted = payload.replace("'", "")
        line = f"ENMOD {f.CARTER} case=C-31 reason='{quoted}'"
        r = _post(c, "/research", {"csrf": token, "line": line})
        assert r.status_code == 200 and "FILING STATUS" in r.text
        _raw_absent(r.text, "research reason")
        assert _esc(line) in r.text
    _raw_absent(c.get("/research").text, "research history")


def test_script_in_alert_notes_and_the_dismissal_reason_comes_back_escaped(w):
    c, token = w.client("PA1")
    alert = f"/alerts/{ALERT}"
    assert _post(c, f"{alert}/assign", {"csrf": token}).status_code == 303
    r = _post(c, f"{alert}/review", {"csrf": token, "note": PAYLOADS[0]})
    assert r.status_code == 303
    r = _post(c, f"{alert}/dismiss", {"csrf": token, "note": PAYLOADS[1]})
    assert r.status_code == 303
    page = c.get(alert).text
    _raw_absent(page, "alert")
    assert _esc(PAYLOADS[0]) in page  # the review note in the timeline
    assert page.count(_esc(PAYLOADS[1])) >= 2  # the closing reason and the timeline
    _raw_absent(c.get("/alerts").text, "alert desk")


def test_script_in_the_grant_forms_comes_back_escaped(w):
    c, token = w.client("MG1")
    form = {**SAMPLES["/grants/new"].form, "csrf": token, "purpose": PAYLOADS[0],
            "basis": PAYLOADS[1]}
    r = _post(c, "/grants/new", form)
    assert r.status_code == 303, r.text
    page = c.get(r.headers["location"]).text
    _raw_absent(page, "grant")
    assert _esc(PAYLOADS[0]) in page and _esc(PAYLOADS[1]) in page
    listing = c.get("/grants").text
    _raw_absent(listing, "grants")
    assert _esc(PAYLOADS[0]) in listing
    # refused input is shown back in its fields, escaped
    r = _post(c, "/grants/new", {**form, "principal": PAYLOADS[1], "days": PAYLOADS[0]})
    assert r.status_code == 422
    _raw_absent(r.text, "grant form")
    assert _escaped(r.text, PAYLOADS[1]) and _esc(PAYLOADS[0]) in r.text
    # the reason a grant was revoked
    po, po_token = w.client("PO1")
    gid = w.ids["grant_id"]
    r = _post(po, f"/grants/{gid}/revoke", {"csrf": po_token, "reason": PAYLOADS[1]})
    assert r.status_code == 303
    page = po.get(f"/grants/{gid}").text
    _raw_absent(page, "revoked grant")
    assert _esc(PAYLOADS[1]) in page


def test_script_in_the_admin_forms_comes_back_escaped(w):
    c, token = w.client("SA1")
    r = _post(c, "/admin/employees/CS1/profile",
              {"csrf": token, "role_csr": "1", "code_ENMOD": "1", "note": PAYLOADS[0]})
    assert r.status_code == 303, r.text
    page = c.get("/admin/employees/CS1").text
    _raw_absent(page, "employee history")
    assert _esc(PAYLOADS[0]) in page
    # a unit scope that is no unit code: refused on the form, shown back escaped
    r = _post(c, "/admin/employees/CS1/profile",
              {"csrf": token, "role_csr": "1", "scopes": PAYLOADS[1], "note": PAYLOADS[1]})
    assert r.status_code >= 400
    _raw_absent(r.text, "profile form")
    for payload in PAYLOADS:
        r = _post(c, "/admin/unlock", {"csrf": token, "seid": payload})
        assert 400 <= r.status_code < 500
        _raw_absent(r.text, "unlock")
    r = _post(c, "/admin/units/U1/ceiling", {"csrf": token, f"code_{PAYLOADS[0]}": "1"})
    _raw_absent(_page(c, r), "ceiling")
    for payload in PAYLOADS:
        for url in (f"/admin/employees/{payload}", f"/admin/changes?status={payload}",
                    f"/admin/employees?unit={payload}"):
            _raw_absent(c.get(url).text, url)


def test_script_in_every_other_text_field_comes_back_escaped(w):
    """Every sample form with each text field set to script: no answer, and no page it
    leads to, carries the markup."""
    for payload in PAYLOADS:
        for path in _post_routes(w.api):
            sample = SAMPLES[path]
            if sample.seid is None or path in ("/signout", "/oversight"):
                continue  # the sign-in form above; the report: test_oversight_report_...
            c, token = w.client(sample.seid)
            form = {k: payload for k in sample.form}
            r = _post(c, w.url(path), {**form, "csrf": token})
            assert r.status_code < 500, (path, r.status_code, r.text[:300])
            _raw_absent(_page(c, r), f"POST {path}")
    # the agreement and the training record show their text back
    c, token = w.client("PO1")
    r = _post(c, "/agreements", {"csrf": token, "title": "Rules of behavior",
                                    "text": PAYLOADS[0] + "\n" + PAYLOADS[1]})
    assert r.status_code == 303
    page = c.get(r.headers["location"]).text
    _raw_absent(page, "agreement")
    assert _esc(PAYLOADS[0]) in page and _esc(PAYLOADS[1]) in page
    r = _post(c, "/training/record", {"csrf": token, "seid": "CT1", "what": "clearance",
                                         "note": PAYLOADS[1]})
    assert r.status_code == 303
    page = c.get(r.headers["location"]).text
    _raw_absent(page, "training")
    assert _esc(PAYLOADS[1]) in page
    # the adjustment form shows refused input back in its fields
    c, token = w.client("EX1")
    r = _post(c, "/adjust", {**SAMPLES["/adjust"].form, "csrf": token,
                                "reason": PAYLOADS[1], "amount": PAYLOADS[0]})
    assert 400 <= r.status_code < 500
    _raw_absent(r.text, "adjust")
    assert _esc(PAYLOADS[1]) in r.text


def test_oversight_report_refuses_script_for_a_scope_and_runs_no_script(w):
    """The report names only SEIDs and units that exist (script is refused, not shown), and
    the standalone report page may run no script at all."""
    c, token = w.client("PO1")
    for scope in ({"seids": f"EX1 {PAYLOADS[0]}"}, {"unit": PAYLOADS[1]},
                  {"grant": PAYLOADS[0]}):
        r = _post(c, "/oversight", {"csrf": token, "grant": "", "unit": "", "seids": "",
                                    **scope})
        assert 400 <= r.status_code < 500, (scope, r.status_code)
        _raw_absent(r.text, f"oversight {scope}")
    r = _post(c, "/oversight", {"csrf": token, "grant": "", "unit": "", "seids": "EX1 CS1"})
    assert r.status_code == 200 and "<h1>" in r.text
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp


# -- oversized, wrong content type, unreadable -------------------------------------------------


def test_oversized_form_bodies_are_413_and_change_nothing(w):
    app = w.app
    users = {seid: w.client(seid) for seid in {s.seid for s in SAMPLES.values() if s.seid}}
    for path in _post_routes(w.api):
        sample, url = SAMPLES[path], w.url(path)
        if sample.seid is None:
            c, _ = w.client()
            c.cookies.set(PRE_CSRF_COOKIE, "d" * 32)
            token = "d" * 32
        else:
            c, token = users[sample.seid]
        before = _snapshot(app)
        for size in (MAX_FORM + 1, 2 * 1024 * 1024):
            field_name = next(iter(sample.form), "note")
            body = {**sample.form, "csrf": token, field_name: "x" * size}
            r = _post(c, url, body)
            assert r.status_code == 413, (path, size, r.status_code, r.text[:300])
            assert "too large" in r.text or "exceeds" in r.text
        assert not _changed(before, _snapshot(app)), path


def test_wrong_content_type_and_unreadable_forms_are_refused_and_change_nothing(w):
    app = w.app
    users = {seid: w.client(seid) for seid in {s.seid for s in SAMPLES.values() if s.seid}}
    for path in _post_routes(w.api):
        sample, url = SAMPLES[path], w.url(path)
        if sample.seid is None:
            c, _ = w.client()
            c.cookies.set(PRE_CSRF_COOKIE, "e" * 32)
            token = "e" * 32
        else:
            c, token = users[sample.seid]
        form = {**sample.form, "csrf": token}
        before = _snapshot(app)
        wrong = [
            {"content": json.dumps(form).encode(), "headers": {"content-type": "application/json"}},
            {"data": form, "files": {"file": ("a.txt", b"x")}},  # multipart/form-data
            {"content": b"csrf=" + token.encode(), "headers": {"content-type": "text/plain"}},
            {"content": b"csrf=" + token.encode(), "headers": {"content-type": ""}},
        ]
        for kw in wrong:
            r = c.post(url, **kw)
            assert r.status_code == 415, (path, kw.get("headers"), r.status_code, r.text[:300])
            assert "application/x-www-form-urlencoded" in r.text
        form_type = {"content-type": "application/x-www-form-urlencoded"}
        unreadable = [
            b"csrf=" + token.encode() + b"&note=\xff\xfe",  # not UTF-8
            "&".join([f"csrf={token}"] + [f"f{i}=x" for i in range(60)]).encode(),  # too many
        ]
        for content in unreadable:
            r = c.post(url, content=content, headers=form_type)
            assert r.status_code == 400 and "could not be read" in r.text, (path, r.text[:300])
        assert not _changed(before, _snapshot(app)), path


# -- files -----------------------------------------------------------------------------------


def _raw_get(api: FastAPI, target: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """GET ``target`` exactly as written (an HTTP client would drop its ``..`` segments),
    handed to the application the way uvicorn does: ``path`` percent-decoded, ``raw_path`` not."""
    import anyio

    path, _, query = target.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": unquote(path), "raw_path": path.encode("latin-1"),
        "query_string": query.encode("latin-1"), "root_path": "",
        "headers": [(b"host", b"testserver")]
        + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }
    out: dict[str, Any] = {"status": 0, "body": b""}

    async def call() -> None:
        done, asked = anyio.Event(), False

        async def receive() -> dict[str, Any]:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out["status"] = message["status"]
            elif message["type"] == "http.response.body":
                out["body"] += message.get("body", b"")
                if not message.get("more_body"):
                    done.set()

        await api(scope, receive, send)

    aio.run(call)
    return int(out["status"]), out["body"].decode("utf-8", errors="replace")


#: text of files outside /static that a traversal would reach
OUTSIDE = ("def mount", "[project]", "root:x:0:0", "from __future__", "[boot loader]")


def test_static_files_never_leave_their_folder(w):
    status, body = _raw_get(w.api, "/static/style.css")
    assert status == 200 and "--focus" in body
    traversals = [
        "/static/../app.py",
        "/static/../../idrs/web/app.py",
        "/static/../../../../pyproject.toml",
        "/static/%2e%2e/app.py",
        "/static/%2e%2e%2fapp.py",
        "/static/..%2fapp.py",
        "/static/..%2f..%2f..%2f..%2fpyproject.toml",
        "/static/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/static/..%5capp.py",
        "/static/..\\app.py",
        "/static/..%5c..%5c..%5c..%5cpyproject.toml",
        "/static/%252e%252e%252fapp.py",
        "/static/....//app.py",
        "/static/.%2e/app.py",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/..%2f..%2f..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/static/%c0%ae%c0%ae/app.py",
        "/static/style.css%00.py",
        "/static/.",
        "/static/",
        "/static/../templates/base.html",
    ]
    for path in traversals:
        status, body = _raw_get(w.api, path)
        assert status in (400, 404, 405), (path, status)
        assert not any(s in body for s in OUTSIDE), path
        assert "{% block" not in body, path


def test_download_ids_with_traversal_are_refused(w):
    token = w.token("PA1")
    cookie = {"cookie": f"{SESSION_COOKIE}={token}"}
    bad_ids = ["../../etc/passwd", "..%2f..%2fetc%2fpasswd", "..%5c..%5cwin.ini",
               "%2e%2e%2f%2e%2e%2fetc", "1%2f..%2f..", "-1", "1e3", "0x1", "%00"]
    for nid in bad_ids:
        for fmt in ("pdf", "html"):
            status, body = _raw_get(w.api, f"/notices/{nid}/{fmt}", cookie)
            assert status in (400, 404, 422), (nid, status)
            assert not any(s in body for s in OUTSIDE), nid
    for fmt in ("../../pyproject.toml", "..%2f..%2fetc%2fpasswd", "..", "%2e%2e", "pdf%00",
                "html/../../x"):
        status, body = _raw_get(w.api, f"/notices/1/{fmt}", cookie)
        assert status in (400, 404, 422), (fmt, status)
        assert not any(s in body for s in OUTSIDE), fmt
    # the API's downloads: notices by number, export register entries by id
    bearer = {"authorization": f"Bearer {token}"}
    for nid in bad_ids:
        status, body = _raw_get(w.api, f"/api/v1/notices/{nid}/pdf", bearer)
        assert status in (400, 404, 422), (nid, status)
        assert json.loads(body)["status"] == status
    for eid in ("../../etc/passwd", "..%2f..%2fetc%2fpasswd", "..%5c..%5cboot.ini", "%2e%2e",
                "x" * 200):
        status, body = _raw_get(w.api, f"/api/v1/exports/{eid}", bearer)
        assert status in (400, 404, 422), (eid, status)
        assert not any(s in body for s in OUTSIDE), eid
