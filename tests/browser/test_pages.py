"""The core flows of issue 8 in a real browser (Debian's Chromium, headless)."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import shot
from tests.browser.world import CASE_TIN, OTHER_TIN


def _run(page, line: str) -> None:
    page.get_by_label("Command", exact=True).fill(line)
    page.get_by_role("button", name="Run", exact=True).click()


def test_sign_in_with_a_one_time_code(desk, world):
    page = desk.sign_in("EXB01")
    expect(page.get_by_text("Signed in as")).to_contain_text("EXB01")
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["idrs_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    expect(page.get_by_text("Your session ends after")).to_be_visible()
    shot(page, "01-signed-in")


def test_wrong_code_is_refused_with_its_reason(browser, base_url, world):
    ctx = browser.new_context(base_url=base_url)
    page = ctx.new_page()
    page.goto("/signin")
    page.get_by_label("SEID").fill("AUB01")
    page.get_by_label("Password").fill("not the password")
    page.get_by_label("One-time code").fill("000000")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("AUTH_FAILED")
    shot(page, "02-sign-in-refused")
    ctx.close()


def test_allowed_research_at_the_prompt(desk):
    page = desk.sign_in("EXB01")
    page.goto("/research")
    _run(page, f"TXMOD {CASE_TIN} 2023 case=BR-1")
    answer = page.get_by_role("region", name="Answer")
    expect(answer).to_contain_text("TXMOD")
    expect(answer).to_contain_text("Audit entry")
    expect(page.locator(".screen")).to_contain_text("TRANSACTIONS")
    _run(page, f"ENMOD {CASE_TIN} case=BR-1")
    expect(page.locator(".screen")).to_contain_text("FILING STATUS")
    history = page.locator("ol.history")
    expect(history).to_contain_text(f"TXMOD {CASE_TIN} 2023 case=BR-1")
    shot(page, "03-research-allowed")


def test_refused_research_shows_reason_codes(desk):
    page = desk.sign_in("EXB01")
    page.goto("/research")
    _run(page, f"ENMOD {OTHER_TIN}")
    refusal = page.locator(".refusal")
    expect(refusal).to_contain_text("Refused")
    expect(refusal).to_contain_text("NO_BUSINESS_NEED")
    expect(refusal).to_contain_text(re.compile(r"audit log as entry \d+"))
    shot(page, "04-research-refused")


def test_cases_page_lists_own_case_masked(desk):
    page = desk.sign_in("EXB01")
    page.get_by_role("link", name="Cases and contacts").click()
    expect(page.get_by_role("cell", name="BR-1")).to_be_visible()
    expect(page.locator("table")).to_contain_text("***-**-0001")
    assert CASE_TIN not in page.content()
    shot(page, "05-cases")


def test_audit_page_verify_and_checkpoint(desk):
    page = desk.sign_in("AUB01")
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", name="Latest signed checkpoint")).to_be_visible()
    page.get_by_role("button", name="Verify the whole log now").click()
    expect(page.get_by_role("heading", name=re.compile("Verification"))).to_contain_text("intact")
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download an export (zip)").click()
    assert dl.value.suggested_filename == "idrs-audit-export.zip"
    shot(page, "06-audit")


def test_adjustment_approved_by_a_second_person(desk, world):
    page = desk.sign_in("MGB01")
    page.get_by_role("link", name="Approvals").click()
    row = page.get_by_role("row").filter(has_text="EXB02")
    expect(row).to_contain_text("ABATEMENT_THRESHOLD")
    shot(page, "07-approval-queue")
    page.get_by_role("button", name=f"Approve #{world.adjustment_id}").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Adjustment {world.adjustment_id} is now applied"
    )
    expect(page.get_by_text("Nothing is waiting for approval.")).to_be_visible()
    shot(page, "08-adjustment-approved")


def test_grant_approved_by_two_approvers(desk, world):
    for n, seid in enumerate(("POB01", "AOB01")):
        page = desk.sign_in(seid)
        page.goto(f"/grants/{world.grant_id}")
        page.get_by_label("Your one-time code").fill(world.code(seid, ahead=1))
        page.get_by_role("button", name=f"Approve grant {world.grant_id}").click()
        expect(page.get_by_role("status")).to_contain_text("Recorded")
        shot(page, f"09-grant-approval-{n + 1}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("approved")
    page.get_by_label("Reason").fill("the detail ended early")
    page.get_by_role("button", name=f"Revoke grant {world.grant_id}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("revoked")


def test_alert_triaged(desk, world):
    page = desk.sign_in("PAB01")
    page.get_by_role("link", name="Alert desk").click()
    expect(page.get_by_role("heading", name="Alerts by category and week")).to_be_visible()
    shot(page, "10-alert-queue")
    page.get_by_role("link", name=world.alert_id).click()
    page.get_by_role("button", name="Take this alert").click()
    page.get_by_label("Reason for dismissal").fill("training exercise <b>not</b> browsing")
    page.get_by_role("button", name="Dismiss").click()
    expect(page.locator("table.list").first).to_contain_text("dismissed")
    expect(page.get_by_text("training exercise <b>not</b> browsing").first).to_be_visible()
    shot(page, "11-alert-dismissed")


def test_oversight_report_opened(desk):
    page = desk.sign_in("POB01")
    page.get_by_role("link", name="Oversight report").click()
    page.get_by_label("or SEIDs").fill("EXB01 DTB01")
    # building the report renders its charts (matplotlib): slow on a loaded machine
    page.get_by_role("button", name="Open the report").click(timeout=90_000)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Oversight report", timeout=90_000)
    shot(page, "12-oversight-report")


def test_core_flow_works_with_javascript_off(browser, base_url, world):
    ctx = browser.new_context(base_url=base_url, java_script_enabled=False)
    page = ctx.new_page()
    page.goto("/research")  # not signed in: sent to the sign-in page
    page.get_by_label("SEID").fill("EXB03")
    page.get_by_label("Password").fill(world.creds["EXB03"]["password"])
    page.get_by_label("One-time code").fill(world.code("EXB03"))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/research")
    _run(page, f"IMFOL {CASE_TIN} case=BR-3")
    expect(page.get_by_role("region", name="Answer")).to_contain_text("IMFOL")
    _run(page, f"IMFOL {OTHER_TIN}")
    expect(page.locator(".refusal")).to_contain_text("NO_BUSINESS_NEED")
    shot(page, "13-no-javascript")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto("/research")
    expect(page).to_have_url(re.compile(r"/signin"))
    ctx.close()


def test_security_admin_unlocks_an_account(desk, world):
    from tests.browser.world import is_locked

    assert is_locked(world, "LKB01")
    page = desk.sign_in("SAB01")
    page.get_by_role("link", name="Security administration").click()
    page.get_by_label("SEID").fill("LKB01")
    page.get_by_role("button", name="Unlock").click()
    expect(page.get_by_role("status")).to_contain_text("LKB01 is unlocked")
    assert not is_locked(world, "LKB01")
    shot(page, "14-unlocked")


def test_session_expiry_warns_first(desk):
    page = desk.sign_in("EXB01")
    page.clock.install()
    page.goto("/research")
    warning = page.locator("#expiry-warning")
    expect(warning).to_be_hidden()
    page.clock.fast_forward("13:30")  # idle sessions end after 15 minutes; warned 2 before
    expect(warning).to_contain_text("will end soon")
    shot(page, "15-expiry-warning")
    page.clock.fast_forward("02:00")
    expect(warning).to_contain_text("has ended")
