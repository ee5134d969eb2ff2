"""Security administration in a real browser: a restricted command code for an employee is
requested by one security administrator and applies only when a second one confirms it."""

from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import select

from idrs.people.models import Employee
from tests.browser.conftest import shot


def _profile(world, seid: str) -> set[str]:
    with world.app.engine.connect() as conn:
        value = conn.execute(select(Employee.profile).where(Employee.seid == seid)).scalar_one()
    return {c for c in value.split(",") if c}


def test_a_restricted_code_waits_for_a_second_administrator(desk, world):
    assert "ADJ54" not in _profile(world, "CSB01")
    first = desk.sign_in("SAB02")
    first.get_by_role("link", name="Security administration").click()
    first.get_by_role("link", name="Employees", exact=True).click()
    first.get_by_role("link", name="CSB01", exact=True).click()
    expect(first.get_by_role("heading", level=1)).to_contain_text("Employee CSB01")
    first.get_by_label("ADJ54").check()
    first.get_by_label("Why (kept with the change)").fill("covering penalty abatements")
    first.get_by_role("button", name="Request the change").click()
    expect(first.get_by_role("status")).to_contain_text(
        "waiting for a second security administrator"
    )
    assert "ADJ54" not in _profile(world, "CSB01")  # not before a second administrator
    shot(first, "20-admin-change-pending")

    # the requester sees the change but cannot confirm it
    first.goto("/admin/changes")
    expect(first.get_by_text("your own request")).to_be_visible()
    expect(first.get_by_role("button", name=re.compile(r"^Confirm change"))).to_have_count(0)

    # a second administrator, in another browser context, confirms it
    second = desk.sign_in("SAB03")
    second.get_by_role("link", name="Security administration").click()
    second.get_by_role("link", name="Pending profile changes").click()
    row = second.get_by_role("row", name=re.compile("CSB01"))
    expect(row).to_contain_text("code:ADJ54")
    row.get_by_label("Note (optional)").fill("checked with the unit manager")
    row.get_by_role("button", name=re.compile(r"^Confirm change")).click()
    expect(second.get_by_role("status")).to_contain_text("confirmed")
    assert "ADJ54" in _profile(world, "CSB01")
    second.goto("/admin/employees/CSB01")
    history = second.get_by_role("table").last
    expect(history).to_contain_text("confirmed")
    expect(history).to_contain_text("SAB03")
    shot(second, "21-admin-change-confirmed")


def test_an_administrator_cannot_edit_their_own_profile(desk):
    page = desk.sign_in("SAB02")
    page.goto("/admin/employees/SAB02")
    expect(page.get_by_text("This is your own record")).to_be_visible()
    expect(page.get_by_role("button", name="Request the change")).to_have_count(0)
