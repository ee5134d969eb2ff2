"""The routes that gained a response model (issue 12, point 5) answer what they answered
before: the body is, byte for byte, the plain JSON of what the service returned (same keys in
the same order, the same nulls, no key added or dropped).

Each test wraps the service function a route calls, keeps what it returned, and compares the
HTTP body with ``pydantic_core.to_json`` of it — the serialization these routes had while
their response model was ``dict[str, Any]``. Paged routes are compared with
``paging.paged`` of the service's list. (Most other changed routes are exercised by the
domain tests; these are the ones no HTTP test reached with a successful answer.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pydantic_core
import pytest
from fastapi.testclient import TestClient

from idrs.access import service as access_service
from idrs.api.app import create_app
from idrs.api.paging import Page, paged
from idrs.detection import triage
from idrs.grants import anonymized
from tests.integration import factories as f
from tests.integration.test_anonymized_records import _anon_grant
from tests.integration.test_anonymized_records import world as anonymized_world  # noqa: F401
from tests.integration.test_investigations import _alert, client, w  # noqa: F401


def _capture(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[Any]:
    """Wrap ``module.name``; the list receives each value it returns."""
    seen: list[Any] = []
    original: Callable[..., Any] = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        seen.append(out)
        return out

    monkeypatch.setattr(module, name, wrapper)
    return seen


def _same(response: Any, raw: Any) -> None:
    assert response.status_code in (200, 201), response.text
    assert response.content == pydantic_core.to_json(raw)


def test_cases_and_alert_triage_answer_as_before(w: Any, client: TestClient,  # noqa: F811
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assigned = _capture(monkeypatch, access_service, "assign_case")
    closed = _capture(monkeypatch, access_service, "close_case")
    r = client.post("/api/v1/cases", json={"seid": "EX1", "tin": f.CARTER, "case_id": "C-77"},
                    headers=w.h("MG1"))
    _same(r, assigned[-1])
    _same(client.post("/api/v1/cases/C-77/close", headers=w.h("MG1")), closed[-1])

    aid = _alert(w, "A000077")
    listed = _capture(monkeypatch, triage, "list_alerts")
    _same(client.get("/api/v1/alerts", headers=w.h("PA1")), paged(listed[-1], Page(), key="alerts"))
    for step, body in (("assign", None), ("review", {"note": "looked at the entries"})):
        done = _capture(monkeypatch, triage, step)
        _same(client.post(f"/api/v1/alerts/{aid}/{step}", json=body, headers=w.h("PA1")),
              done[-1])
    shown = _capture(monkeypatch, triage, "show")
    _same(client.get(f"/api/v1/alerts/{aid}", headers=w.h("PA1")), shown[-1])
    referred = _capture(monkeypatch, triage, "refer")
    r = client.post(f"/api/v1/alerts/{aid}/refer", json={"note": "to TIGTA"}, headers=w.h("PA1"))
    _same(r, referred[-1])
    assert list(r.json())[-2:] == ["case_id", "package"]
    _same(client.get(f"/api/v1/alerts/{aid}", headers=w.h("PA1")), shown[-1])

    other = _alert(w, "A000078", inspected=False)
    client.post(f"/api/v1/alerts/{other}/assign", headers=w.h("PA1"))
    dismissed = _capture(monkeypatch, triage, "dismiss")
    r = client.post(f"/api/v1/alerts/{other}/dismiss", json={"reason": "a test"},
                    headers=w.h("PA1"))
    _same(r, dismissed[-1])
    assert "package" not in r.json()  # only a referral carries one


def test_anonymized_records_reidentification_and_rotation_answer_as_before(
        anonymized_world: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    aw = anonymized_world
    gid = _anon_grant(aw, "DT001")
    with TestClient(create_app(aw.app)) as http:
        analyst = {"Authorization": f"Bearer {aw.token('DT001')}"}
        listed = _capture(monkeypatch, anonymized, "list_records")
        r = http.get("/api/v1/anonymized/records", params={"limit": 3}, headers=analyst)
        _same(r, listed[-1])
        records = r.json()["records"]
        assert records, "the population releases records"
        p = records[0]["pseudonym"]
        shown = _capture(monkeypatch, anonymized, "show_record")
        _same(http.get(f"/api/v1/anonymized/records/{p}", headers=analyst), shown[-1])

        staff = {"Authorization": f"Bearer {aw.token('SA001')}"}
        found = _capture(monkeypatch, anonymized, "reidentify")
        r = http.post(f"/api/v1/grants/{gid}/reidentify",
                      json={"pseudonym": p, "reason": "suspected misuse"}, headers=staff)
        _same(r, found[-1])
        rotated = _capture(monkeypatch, anonymized, "rotate_key")
        _same(http.post(f"/api/v1/grants/{gid}/rotate-key", headers=staff), rotated[-1])
