"""The analyst's page in a real browser (issue 15.4): a statistics principal sees the budget
left, runs a count by state and gets a table and a chart with error bars, watches the budget
go down, and is refused once it is spent; sampling anonymized records shows what is released
and what is suppressed."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import shot
from tests.browser.world import ANALYST


def test_the_analyst_runs_statistics_within_the_budget(desk):
    page = desk.sign_in(ANALYST[0])
    page.get_by_role("link", name="Analysis", exact=True).click()
    expect(page.locator("#budget-left")).to_have_text("1.0")
    page.get_by_role("checkbox", name="state").check()
    page.get_by_label("Aggregate").select_option("count")
    page.get_by_label("ε for this query").fill("0.6")
    page.get_by_role("button", name="Run").click()
    answer = page.get_by_role("region", name="Answer")
    expect(answer).to_contain_text("ε spent 0.6")
    expect(page.locator("#budget-left")).to_have_text("0.4")
    expect(page.locator("#answer-rows")).to_contain_text("OH")
    chart = page.locator("#answer-chart")
    expect(chart).to_have_attribute("src", __import__("re").compile(r"^data:image/png;base64,"))
    assert chart.evaluate("img => img.naturalWidth") > 0
    shot(page, "40-analysis-statistics")

    # a mean with its bounds, then a query the budget left cannot pay for
    page.get_by_role("checkbox", name="state").uncheck()
    page.get_by_label("Aggregate").select_option("mean")
    page.get_by_label("Column (sum, mean)").select_option("agi")
    page.get_by_label("Lower bound ($)").fill("0")
    page.get_by_label("Upper bound ($)").fill("200000")
    page.get_by_label("ε for this query").fill("0.3")
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_role("region", name="Answer")).to_contain_text("union bound")
    expect(page.locator("#budget-left")).to_have_text("0.1")
    page.get_by_label("ε for this query").fill("0.5")
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_role("alert")).to_contain_text("BUDGET_EXHAUSTED")
    expect(page.locator("#budget-left")).to_have_text("0.1")
    shot(page, "41-analysis-budget-exhausted")


def test_the_analyst_samples_anonymized_records(desk):
    page = desk.sign_in(ANALYST[0])
    page.goto("/analysis")
    page.get_by_label("How many").fill("5")
    page.get_by_role("button", name="Sample").click()
    expect(page.get_by_role("region", name="Records")).to_contain_text("suppressed")
    shot(page, "42-analysis-records")
