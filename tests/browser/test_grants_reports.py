"""Outside access and the weekly reports in a real browser (Debian's Chromium, headless).

A manager sponsors a contractor's grant in the request form; the contractor reads the
agreement and signs it with a fresh one-time code; the manager certifies the unit's weekly
security report and an auditor sees the certification rate.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import shot
from tests.browser.world import CONTRACTOR


def test_contractor_grant_requested_and_agreement_signed(desk, world):
    seid = CONTRACTOR[0]
    sponsor = desk.sign_in("MGB01")
    sponsor.get_by_role("link", name="Grants", exact=True).click()
    sponsor.get_by_role("link", name="Request a grant").click()
    sponsor.get_by_label("Principal (SEID)").fill(seid)
    sponsor.get_by_label("Purpose").fill("data-center migration <support>")
    sponsor.get_by_label("Legal basis").fill("IRC 6103(n); contract TIRNO-26-0001")
    for code in ("ENMOD", "IMFOL"):
        sponsor.get_by_role("checkbox", name=code, exact=True).check()
    for cls in ("identity", "return"):
        sponsor.get_by_role("checkbox", name=cls, exact=True).check()
    sponsor.get_by_label("Term (days)").fill("90")
    shot(sponsor, "20-grant-request-form")
    sponsor.get_by_role("button", name="Request the grant").click()
    heading = sponsor.get_by_role("heading", level=1)
    expect(heading).to_contain_text("pending approval")
    expect(sponsor.get_by_role("status")).to_contain_text("requested")
    expect(sponsor.get_by_text("data-center migration <support>")).to_be_visible()
    expect(sponsor.locator("table.list").first).to_contain_text("NOT signed")
    grant = re.search(r"Grant (\d+)", heading.inner_text()).group(1)  # type: ignore[union-attr]
    shot(sponsor, "21-grant-requested")

    contractor = desk.sign_in(seid)
    contractor.get_by_role("link", name="Grants", exact=True).click()
    contractor.get_by_role("link", name=f"Grant {grant}", exact=True).click()
    contractor.get_by_role("link", name="read and sign the agreement").click()
    # the grant page links "Confidentiality agreement" too: wait for the list, or the next
    # click may land on the grant page still shown (a race the CI lost under load)
    expect(contractor.get_by_role("heading", level=1)).to_have_text("Confidentiality agreements")
    contractor.get_by_role("link", name="Confidentiality agreement").click()
    expect(contractor.get_by_role("region", name="Agreement text")).to_contain_text(
        "confidential"
    )
    contractor.get_by_label("Your one-time code").fill(world.code(seid, ahead=1))
    contractor.get_by_role("button", name=re.compile("sign version 1")).click()
    expect(contractor.get_by_role("status")).to_contain_text("Signed and recorded")
    expect(contractor.get_by_text("You signed this version")).to_be_visible()
    shot(contractor, "22-agreement-signed")
    contractor.goto(f"/grants/{grant}")
    expect(contractor.locator("table.list").first).to_contain_text("agreement signed")


def test_manager_certifies_the_weekly_report(desk):
    manager = desk.sign_in("MGB01")
    manager.get_by_role("link", name="Weekly report").click()
    expect(manager.get_by_role("heading", level=1)).to_contain_text("unit FIELD")
    own = manager.get_by_role("row").filter(has_text="own account")
    expect(own).to_contain_text("DTB01")
    expect(own).to_contain_text("CONFLICT_SELF")
    expect(manager.get_by_text("not certified").first).to_be_visible()
    shot(manager, "23-weekly-report")
    manager.get_by_role("button", name=re.compile("Certify the report of FIELD")).click()
    expect(manager.get_by_role("status")).to_contain_text("Certified and recorded")
    expect(manager.get_by_text("certified by MGB01").first).to_be_visible()
    expect(manager.get_by_role("button", name=re.compile("Certify"))).to_have_count(0)
    shot(manager, "24-weekly-report-certified")

    auditor = desk.sign_in("AUB01")
    auditor.get_by_role("link", name="Certification rate").click()
    expect(auditor.get_by_role("status")).to_contain_text("1 of 1 reports certified")
    shot(auditor, "25-certification-rate")
