"""Every flow of issue 8 point 2, in a real browser, on the data ``make demo`` creates.

The module runs the real ``idrs demo --no-serve`` (a small population) into a fresh
IDRS_HOME with SQLite, serves it with the real ``idrs serve`` on loopback, and signs each
demo employee in through the sign-in page with the password and TOTP code from
``IDRS_HOME/demo-credentials.json`` (each person once: a TOTP step serves once). The tests
run in order and build on each other, as a newcomer trying the demo would: the examiner's
refused look-ups feed the detection run whose alert the privacy analyst triages, and the
weekly report. Screenshots: tests/browser/artifacts/demo-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser import demo_world
from tests.browser.conftest import shot

pytestmark = pytest.mark.slow  # about a minute and a half: the demo is built and served

STRANGER_TIN = "900-00-0001"  # a taxpayer the examiner has no case or contact for
TIMEOUT = 90_000  # ms: a cap on waits for conditions, reached only on a hang


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> demo_world.Demo:
    return demo_world.build(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def demo_url(demo: demo_world.Demo) -> Iterator[str]:
    with demo_world.serve(demo) as url:
        yield url


class People:
    """One browser context per demo employee, signed in through the sign-in page once."""

    def __init__(self, browser, base_url: str, demo: demo_world.Demo) -> None:
        self.browser, self.base_url, self.demo = browser, base_url, demo
        self.pages: dict[str, object] = {}

    def context(self, **kw):
        ctx = self.browser.new_context(
            base_url=self.base_url, viewport={"width": 1280, "height": 900}, **kw
        )
        ctx.set_default_timeout(TIMEOUT)
        return ctx

    def sign_in(self, seid: str):
        if seid in self.pages:
            return self.pages[seid]
        page = self.context().new_page()
        page.goto("/")  # the home page sends a stranger to the sign-in page
        expect(page).to_have_url(re.compile(r"/signin"))
        page.get_by_label("SEID").fill(seid)
        page.get_by_label("Password").fill(self.demo.people[seid]["password"])
        page.get_by_label("One-time code").fill(self.demo.code(seid))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/research")
        expect(page.get_by_text("Signed in as")).to_contain_text(seid)
        self.pages[seid] = page
        return page


@pytest.fixture(scope="module")
def people(browser, demo_url: str, demo: demo_world.Demo) -> Iterator[People]:
    p = People(browser, demo_url, demo)
    yield p
    for page in p.pages.values():
        page.context.close()  # type: ignore[attr-defined]


def _run(page, line: str) -> None:
    """Run one line at the prompt and wait until its answer is on the page (the history
    gains the line), so that nothing acts on the previous page while htmx swaps it."""
    history = page.locator("ol.history > li")
    before = history.count()
    page.get_by_label("Command", exact=True).fill(line)
    page.get_by_role("button", name="Run", exact=True).click()
    expect(history).to_have_count(before + 1)
    expect(history.first).to_contain_text(line)


def _masked(tin: str) -> str:
    return "***-**-" + tin[-4:]


# -- what the demo printed -------------------------------------------------------------------


def test_demo_prints_how_to_sign_in(demo):
    case = demo.examiner["case"]
    assert case["case_id"] == "DEMO-1"
    assert "idrs demo is ready" in demo.printed
    assert f"login --seid DEMOEX1 --password '{demo.examiner['password']}'" in demo.printed
    assert f"research ENMOD {case['tin']} --case DEMO-1" in demo.printed
    # the people every flow below needs
    roles = {seid: p["roles"][0] for seid, p in demo.people.items()}
    assert {roles[s] for s in ("SA001", "DEMOSA1")} == {"security_admin"}
    assert roles["DEMOMG1"] == "manager" and roles["DEMOPA1"] == "privacy_analyst"
    assert demo.people["DT100"]["grant_id"] == 1


# -- sign-in and the research prompt ---------------------------------------------------------


def test_sign_in_with_the_one_time_code(people, demo):
    # a wrong code is refused with its reason first (it does not count as a use of the step)
    ctx = people.context()
    page = ctx.new_page()
    page.goto("/signin")
    page.get_by_label("SEID").fill("DEMOEX1")
    page.get_by_label("Password").fill(demo.examiner["password"])
    page.get_by_label("One-time code").fill("000000")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("AUTH_FAILED")
    ctx.close()

    page = people.sign_in("DEMOEX1")
    expect(page.get_by_text("Signed in as")).to_contain_text("examiner")
    expect(page.get_by_text("Your session ends after")).to_be_visible()
    session = {c["name"]: c for c in page.context.cookies()}["idrs_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    shot(page, "demo-01-signed-in")


def test_research_prompt_allowed_on_the_examiners_case(people, demo):
    tin = demo.examiner["case"]["tin"]
    page = people.sign_in("DEMOEX1")
    page.goto("/research")
    _run(page, f"IMFOL {tin}")
    answer = page.get_by_role("region", name="Answer")
    expect(answer).to_contain_text("IMFOL")
    modules = page.locator(".screen table").first
    expect(modules).to_contain_text("settled")
    year = modules.locator("tbody tr").first.locator("td").first.inner_text().strip()
    assert re.fullmatch(r"20\d\d", year), year

    _run(page, f"ENMOD {tin}")
    expect(answer).to_contain_text("ENMOD")
    expect(answer).to_contain_text(re.compile(r"Audit entry \d+"))
    screen = page.locator(".screen")
    expect(screen).to_contain_text("ADDRESS HISTORY")
    expect(screen).to_contain_text("FILING STATUS")
    shot(page, "demo-02-enmod")

    _run(page, f"TXMOD {tin} {year}")
    expect(answer).to_contain_text("TXMOD")
    expect(screen).to_contain_text("TRANSACTIONS")
    history = page.locator("ol.history")
    for line in (f"IMFOL {tin}", f"ENMOD {tin}", f"TXMOD {tin} {year}"):
        expect(history.locator("li", has_text=line)).to_contain_text("allowed")
    shot(page, "demo-03-txmod-and-history")
    demo.year = year  # the adjustment below needs a year with a module


def test_research_prompt_refusals_show_reason_codes(people, demo):
    page = people.sign_in("DEMOEX1")
    page.goto("/research")
    refusal = page.locator(".refusal")
    _run(page, f"ENMOD {demo.examiner['tin']}")  # the examiner's own account
    expect(refusal).to_contain_text("Refused")
    expect(refusal).to_contain_text("CONFLICT_SELF")
    expect(refusal).to_contain_text("employees may never open their own account")
    expect(refusal).to_contain_text(re.compile(r"Recorded in the audit log as entry \d+"))
    shot(page, "demo-04-refused-own-account")
    _run(page, f"ENMOD {demo.people['DEMOCS1']['tin']}")  # a co-worker's account
    expect(refusal).to_contain_text("CONFLICT_COWORKER")
    for _ in range(2):  # a stranger's account, twice: no case, no contact
        _run(page, f"ENMOD {STRANGER_TIN}")
        expect(refusal).to_contain_text("NO_BUSINESS_NEED")
        expect(refusal).to_contain_text("no open case or taxpayer contact")
    history = page.locator("ol.history")
    expect(history.locator("li", has_text=f"ENMOD {STRANGER_TIN}").first).to_contain_text(
        "refused"
    )
    # the history re-runs a line with one button
    page.get_by_role("button", name=f"Run again: ENMOD {demo.examiner['case']['tin']}").click()
    expect(page.get_by_role("region", name="Answer")).to_contain_text("ENMOD")
    shot(page, "demo-05-refused-and-history")


def test_case_inventory_and_contacts(people, demo):
    tin = demo.examiner["case"]["tin"]
    page = people.sign_in("DEMOEX1")
    page.get_by_role("link", name="Cases and contacts").click()
    row = page.get_by_role("row").filter(has_text="DEMO-1")
    expect(row).to_contain_text(_masked(tin))
    expect(page.get_by_text("No open contacts.")).to_be_visible()  # the demo opens none
    assert tin not in page.content()
    shot(page, "demo-06-cases")


# -- an adjustment and its approval ----------------------------------------------------------


def test_adjustment_requested_and_approved_by_the_manager(people, demo):
    tin, year = demo.examiner["case"]["tin"], demo.year
    ex = people.sign_in("DEMOEX1")
    ex.get_by_role("link", name="Request an adjustment").click()
    ex.get_by_label("TIN").fill(tin)
    ex.get_by_label("Command").select_option("ADJ54")
    ex.get_by_label("Case").fill("DEMO-1")
    ex.get_by_label("Reason").fill("penalty abated for reasonable cause")
    ex.get_by_label("Tax year").fill(year)
    ex.get_by_label("Transaction code").fill("291")
    ex.get_by_label("Amount (dollars)").fill("1500.00")
    ex.get_by_role("button", name="Request", exact=True).click()
    result = ex.get_by_role("status")
    expect(result).to_contain_text("pending approval")
    expect(result).to_contain_text("Needs a second person")
    adj = re.search(r"Adjustment (\d+)", result.inner_text()).group(1)  # type: ignore[union-attr]
    shot(ex, "demo-07-adjustment-requested")

    mg = people.sign_in("DEMOMG1")
    mg.get_by_role("link", name="Approvals").click()
    row = mg.get_by_role("row").filter(has_text="DEMOEX1")
    expect(row).to_contain_text("ADJ54")
    expect(row).to_contain_text("1500")
    shot(mg, "demo-08-approval-queue")
    mg.get_by_label("Note (optional)").fill("reasonable cause documented")
    mg.get_by_role("button", name=f"Approve #{adj}").click()
    expect(mg.get_by_role("status")).to_contain_text(f"Adjustment {adj} is now applied")
    expect(mg.get_by_text("Nothing is waiting for approval.")).to_be_visible()
    shot(mg, "demo-09-adjustment-approved")

    # the examiner sees the posting on the module
    ex.goto("/research")
    _run(ex, f"TXMOD {tin} {year}")
    expect(ex.locator(".screen")).to_contain_text("291")


# -- security administration -----------------------------------------------------------------


def test_security_administration(people, demo):
    # the service representative locks their account with wrong passwords at the sign-in page
    # (JavaScript off: each click waits for its answer page)
    ctx = people.context(java_script_enabled=False)
    page = ctx.new_page()
    page.goto("/signin")
    for _ in range(5):
        page.get_by_label("SEID").fill("DEMOCS1")
        page.get_by_label("Password").fill("not the password")
        page.get_by_label("One-time code").fill("000000")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("AUTH_FAILED")
    # the page never says the account is locked (a stranger would learn the SEID exists) ...
    expect(page.get_by_role("alert")).not_to_contain_text("ACCOUNT_LOCKED")
    ctx.close()

    sa = people.sign_in("SA001")
    sa.get_by_role("link", name="Security administration").click()
    sa.get_by_label("SEID").fill("DEMOCS1")
    sa.get_by_role("button", name="Unlock").click()
    expect(sa.get_by_role("status")).to_contain_text("DEMOCS1 is unlocked")
    shot(sa, "demo-10-admin-unlocked")

    sa.get_by_role("link", name="Employees", exact=True).click()
    table = sa.locator("table.list")
    for seid in ("DEMOEX1", "DEMOCS1", "DEMOSA1", "DT100"):  # unit SEC administers every unit
        expect(table.get_by_role("link", name=seid, exact=True)).to_be_visible()
    expect(sa.get_by_role("row").filter(has_text="DEMOCS1")).to_contain_text("active")
    shot(sa, "demo-11-admin-employees")

    sa.goto("/admin/units")
    demo_row = sa.get_by_role("row").filter(has_text="Demonstration unit")
    expect(demo_row).to_contain_text("ADJ54")
    expect(sa.get_by_role("heading", name="Ceiling of DEMO")).to_be_visible()
    shot(sa, "demo-12-admin-units")

    # a change that adds nothing restricted applies at once
    sa.goto("/admin/employees/DEMOCS1")
    expect(sa.get_by_role("heading", level=1)).to_contain_text("Employee DEMOCS1")
    sa.get_by_label("NAMES", exact=True).uncheck()
    sa.get_by_label("Why (kept with the change)").fill("no name searches at the front desk")
    sa.get_by_role("button", name="Request the change").click()
    expect(sa.get_by_role("status")).to_contain_text("is applied")
    profile = sa.get_by_role("row", name=re.compile("^Profile"))
    expect(profile).not_to_contain_text("NAMES")

    # a restricted code waits for a second security administrator
    sa.get_by_label("ADJ54").check()
    sa.get_by_label("Why (kept with the change)").fill("covering penalty abatements")
    sa.get_by_role("button", name="Request the change").click()
    expect(sa.get_by_role("status")).to_contain_text("waiting for a second security administrator")
    expect(profile).not_to_contain_text("ADJ54")
    shot(sa, "demo-13-admin-change-pending")
    sa.goto("/admin/changes")
    expect(sa.get_by_text("your own request")).to_be_visible()
    expect(sa.get_by_role("button", name=re.compile(r"^Confirm change"))).to_have_count(0)

    rep = people.sign_in("DEMOSA1")  # the DEMO unit's security representative
    rep.get_by_role("link", name="Security administration").click()
    rep.get_by_role("link", name="Pending profile changes").click()
    row = rep.get_by_role("row", name=re.compile("DEMOCS1"))
    expect(row).to_contain_text("code:ADJ54")
    row.get_by_label("Note (optional)").fill("checked with the unit manager")
    row.get_by_role("button", name=re.compile(r"^Confirm change")).click()
    expect(rep.get_by_role("status")).to_contain_text("confirmed")
    rep.goto("/admin/employees/DEMOCS1")
    expect(rep.get_by_role("row", name=re.compile("^Profile"))).to_contain_text("ADJ54")
    history = rep.get_by_role("table").last
    expect(history).to_contain_text("confirmed")
    expect(history).to_contain_text("DEMOSA1")
    shot(rep, "demo-14-admin-change-confirmed")

    # nobody edits their own record
    rep.goto("/admin/employees/DEMOSA1")
    expect(rep.get_by_text("This is your own record")).to_be_visible()
    expect(rep.get_by_role("button", name="Request the change")).to_have_count(0)


def test_the_prompt_works_with_javascript_off(people, demo):
    # the service representative, unlocked above, signs in with JavaScript off
    ctx = people.context(java_script_enabled=False)
    page = ctx.new_page()
    page.goto("/research")  # not signed in: sent to the sign-in page
    expect(page).to_have_url(re.compile(r"/signin"))
    page.get_by_label("SEID").fill("DEMOCS1")
    page.get_by_label("Password").fill(demo.people["DEMOCS1"]["password"])
    page.get_by_label("One-time code").fill(demo.code("DEMOCS1"))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/research")
    _run(page, f"ENMOD {demo.examiner['case']['tin']}")  # the examiner's case, not theirs
    expect(page.locator(".refusal")).to_contain_text("NO_BUSINESS_NEED")
    shot(page, "demo-15-no-javascript")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    ctx.close()


# -- outside access: the detailee's grant, its approvals, the agreement -----------------------


def test_outside_detail_grant_approved_and_agreement_signed(people, demo):
    grant = demo.people["DT100"]["grant_id"]
    for n, seid in enumerate(("PO100", "AO100")):
        page = people.sign_in(seid)
        page.get_by_role("link", name="Grants", exact=True).click()
        row = page.get_by_role("row").filter(has_text="DT100")
        expect(row).to_contain_text("Department of Energy")
        page.get_by_role("link", name=f"Grant {grant}", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("pending approval")
        expect(page.locator("table.list").first).to_contain_text("clearance verified")
        page.get_by_label("Your one-time code").fill(demo.code(seid))
        page.get_by_role("button", name=f"Approve grant {grant}").click()
        expect(page.get_by_role("status")).to_contain_text("Recorded")
        shot(page, f"demo-16-grant-approval-{n + 1}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(re.compile("approved|active"))
    approvals = page.get_by_role("heading", name="Approvals").locator("xpath=following-sibling::ul[1]")
    expect(approvals).to_contain_text("PO100")
    expect(approvals).to_contain_text("AO100")

    dt = people.sign_in("DT100")
    dt.get_by_role("link", name="Grants", exact=True).click()
    dt.get_by_role("link", name=f"Grant {grant}", exact=True).click()
    expect(dt.locator("table.list").first).to_contain_text("agreement NOT signed")
    dt.get_by_role("link", name="read and sign the agreement").click()
    # (the grant page links the agreement's title too: wait for the list before clicking it)
    expect(dt.get_by_role("heading", level=1)).to_have_text("Confidentiality agreements")
    dt.get_by_role("link", name="Confidentiality agreement for outside personnel").click()
    expect(dt.get_by_role("region", name="Agreement text")).to_contain_text("26 U.S.C. 6103")
    dt.get_by_label("Your one-time code").fill(demo.code("DT100"))
    dt.get_by_role("button", name=re.compile("sign version 1")).click()
    expect(dt.get_by_role("status")).to_contain_text("Signed and recorded")
    expect(dt.get_by_text("You signed this version")).to_be_visible()
    shot(dt, "demo-17-agreement-signed")
    dt.goto(f"/grants/{grant}")
    expect(dt.locator("table.list").first).to_contain_text("agreement signed")

    # the approved grant opens ENMOD for the detailee (no case: population "all"), masked to
    # the grant's classes (identity, return): the phone is starred, the addresses dropped
    dt.goto("/research")
    _run(dt, f"ENMOD {demo.examiner['case']['tin']}")
    answer = dt.get_by_role("region", name="Answer")
    expect(answer).to_contain_text("ENMOD")
    expect(answer).to_contain_text(re.compile(r"Masked: .*phone"))
    expect(answer).to_contain_text(re.compile(r"Masked: .*address_history"))
    expect(dt.locator(".screen dl")).to_contain_text("****")
    expect(dt.locator(".screen")).to_contain_text("FILING STATUS")
    shot(dt, "demo-18-detailee-masked-enmod")
    _run(dt, f"TXMOD {demo.examiner['case']['tin']} {demo.year}")
    expect(dt.locator(".refusal")).to_contain_text("OUT_OF_SCOPE")  # not among the commands
    expect(dt.locator(".refusal")).to_contain_text("outside your access grant")
    shot(dt, "demo-19-detailee-refused")

    po = people.sign_in("PO100")
    po.get_by_role("link", name="Agreements", exact=True).click()
    expect(po.get_by_role("heading", level=1)).to_have_text("Confidentiality agreements")
    row = po.get_by_role("row").filter(has_text="Confidentiality agreement for outside personnel")
    expect(row).to_contain_text("current")
    expect(row.locator("td").nth(4)).to_have_text("1")
    row.get_by_role("link").click()
    expect(po.locator("table.list")).to_contain_text("DT100")
    shot(po, "demo-20-agreement-signatures")


# -- the privacy analyst's desk --------------------------------------------------------------


def test_alert_desk_after_a_detection_run(people, demo):
    out = demo_world.detect(demo)  # the operator's run over the look-ups made above
    assert "DEMOEX1" in out, out
    pa = people.sign_in("DEMOPA1")
    pa.get_by_role("link", name="Alert desk").click()
    row = pa.get_by_role("row").filter(has_text="DEMOEX1")
    expect(row).to_contain_text("refused_conflict")
    expect(row).to_contain_text("open")
    expect(pa.get_by_role("heading", name="Alerts by category and week")).to_be_visible()
    shot(pa, "demo-21-alert-queue")
    row.get_by_role("link").first.click()
    expect(pa.get_by_role("heading", level=1)).to_contain_text("Alert A")
    evidence = pa.locator("table.list").nth(1)
    expect(evidence).to_contain_text("coworker_account")
    expect(evidence).to_contain_text("refused_no_need")
    expect(pa.get_by_text("No triage steps yet.")).to_be_visible()
    pa.get_by_role("button", name="Take this alert").click()
    expect(pa.locator("table.list").first).to_contain_text("assigned to DEMOPA1")
    pa.get_by_label("Review note").fill("demo examiner trying the refusals <i>on purpose</i>")
    pa.get_by_role("button", name="Add note").click()
    timeline = pa.get_by_role("heading", name="Timeline").locator("xpath=following-sibling::ol[1]")
    expect(timeline).to_contain_text("<i>on purpose</i>")  # escaped, shown as text
    expect(timeline.locator("li")).to_have_count(2)
    pa.get_by_label("Reason for dismissal").fill("a demonstration, not browsing")
    pa.get_by_role("button", name="Dismiss").click()
    expect(pa.locator("table.list").first).to_contain_text("dismissed")
    expect(timeline).to_contain_text("DEMOPA1")
    expect(timeline.locator("li")).to_have_count(3)
    shot(pa, "demo-22-alert-triaged")


# -- the reports and the audit log -----------------------------------------------------------


def test_oversight_report_of_the_detail(people, demo):
    grant = demo.people["DT100"]["grant_id"]
    po = people.sign_in("PO100")
    po.get_by_role("link", name="Oversight report").click()
    po.get_by_label("Grant number").fill(str(grant))
    # building the report renders its charts (matplotlib): slow on a loaded machine
    po.get_by_role("button", name="Open the report").click(timeout=90_000)
    expect(po.get_by_role("heading", level=1)).to_contain_text("Oversight report", timeout=90_000)
    body = po.locator("body")
    expect(body).to_contain_text("DT100 — detailee from Department of Energy")
    expect(body).to_contain_text(f"Grant {grant} — active")
    # what the detailee did above: one ENMOD allowed, one TXMOD refused
    expect(body).to_contain_text("1 allowed requests and 1 denials")
    shot(po, "demo-23-oversight-report")


def test_audit_page_verification_and_export(people):
    au = people.sign_in("DEMOAU1")
    au.get_by_role("link", name="Audit log").click()
    expect(au.get_by_role("heading", name="Latest signed checkpoint")).to_be_visible()
    expect(au.locator("pre.note")).to_contain_text("idrs.example/audit-log")  # `idrs demo` signed one
    au.get_by_role("button", name="Verify the whole log now").click()
    expect(au.get_by_role("heading", name=re.compile("Verification"))).to_contain_text(
        "intact", timeout=60_000
    )
    with au.expect_download() as dl:
        au.get_by_role("button", name="Download an export (zip)").click()
    assert dl.value.suggested_filename == "idrs-audit-export.zip"
    shot(au, "demo-24-audit")


def test_weekly_report_certified(people, demo):
    mg = people.sign_in("DEMOMG1")
    mg.get_by_role("link", name="Weekly report").click()
    expect(mg.get_by_role("heading", level=1)).to_contain_text("unit DEMO")
    own = mg.get_by_role("row").filter(has_text="own account")
    expect(own).to_contain_text("DEMOEX1")
    expect(own).to_contain_text("CONFLICT_SELF")
    expect(mg.get_by_role("row").filter(has_text="employee accounts")).to_contain_text(
        "CONFLICT_COWORKER"
    )
    # other refusals: the examiner's two look-ups of a stranger, the representative's one
    expect(mg.get_by_role("row", name="NO_BUSINESS_NEED 3", exact=True)).to_be_visible()
    expect(mg.get_by_text("not certified").first).to_be_visible()
    shot(mg, "demo-25-weekly-report")
    mg.get_by_role("button", name=re.compile("Certify the report of DEMO")).click()
    expect(mg.get_by_role("status")).to_contain_text("Certified and recorded")
    expect(mg.get_by_text("certified by DEMOMG1").first).to_be_visible()
    shot(mg, "demo-26-weekly-report-certified")

    au = people.sign_in("DEMOAU1")
    au.get_by_role("link", name="Certification rate").click()
    expect(au.get_by_role("status")).to_contain_text("1 of 1 reports certified")
    shot(au, "demo-27-certification-rate")


def test_session_expiry_warns_first(people):
    au = people.sign_in("DEMOAU1")
    au.clock.install()
    au.goto("/audit")
    warning = au.locator("#expiry-warning")
    expect(warning).to_be_hidden()
    au.clock.fast_forward("13:30")  # idle sessions end after 15 minutes; warned 2 before
    expect(warning).to_contain_text("will end soon")
    shot(au, "demo-28-expiry-warning")
