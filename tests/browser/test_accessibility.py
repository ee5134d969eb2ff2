"""Accessibility of every page in a real browser (Debian's Chromium, headless): issue 8.

For every page the navigation offers to the roles of the browser world (and the pages they
lead to: an alert, a grant, an agreement, an employee, the request forms, a refusal), measured
in the page itself:

(a) structure: ``<html lang>``, exactly one ``<h1>``, one ``<main>`` landmark; every visible
    input, select and textarea has an accessible name (a label or aria-label), every button
    and link has text, every image has alt text, no id is used twice (``label for`` would
    point at the wrong field);
(b) keyboard: Tab visits every interactive element in DOM order, each with a visible focus
    indicator (its outline or box shadow changes, in a colour with at least 3:1 contrast
    against what surrounds it); the research prompt works from the keyboard alone;
(c) contrast: every visible piece of text (placeholders and field values included) has a
    WCAG contrast ratio of at least 4.5:1 against its effective background (the nearest
    ancestors' background colours composited), 3:1 for large text.

The world is shared with the other browser tests: these tests only look (and run research),
they approve, take or sign nothing. A screenshot of each page: tests/browser/artifacts/a11y-*.png.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from idrs.web.render import NAV
from tests.browser.conftest import shot
from tests.browser.world import CASE_TIN, OTHER_TIN, PEOPLE

#: (who, page): who is "" for a visitor who is not signed in. {grant}, {alert} and
#: {agreement} are the world's. Each page once, seen by someone who gets its forms.
PLAN: list[tuple[str, str]] = [
    ("", "/signin"),
    ("EXB01", "/research"),
    ("EXB01", "/cases"),
    ("EXB01", "/adjust"),
    ("EXB01", "/adjustments"),  # not a manager: the refusal page
    ("MGB01", "/adjustments"),
    ("MGB01", "/reports/weekly"),
    ("MGB01", "/grants"),
    ("MGB01", "/grants/new"),
    ("EXB01", "/analysis"),
    ("PAB01", "/alerts"),
    ("PAB01", "/alerts/{alert}"),
    ("PAB01", "/taxpayers"),
    ("PAB01", "/notices"),
    ("POB01", "/disclosures"),
    ("POB01", "/grants/{grant}"),
    ("POB01", "/agreements"),
    ("POB01", "/agreements/{agreement}"),
    ("POB01", "/training"),
    ("POB01", "/oversight"),
    ("AUB01", "/audit"),
    ("AUB01", "/reports/certification-rate"),
    ("SAB02", "/admin"),
    ("SAB02", "/admin/employees"),
    ("SAB02", "/admin/employees/CSB01"),
    ("SAB02", "/admin/units"),
    ("SAB02", "/admin/changes"),
    ("SAB02", "/investigations"),
]

#: JavaScript helpers shared by the measurements (WCAG 2.x relative luminance and contrast).
COLOUR_JS = r"""
const parse = (c) => {
  const m = /rgba?\(([^)]+)\)/.exec(c || "");
  if (!m) return null;
  const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
};
const over = (top, bottom) => {
  const a = top[3];
  return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat([1]);
};
const lum = (c) => {
  const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
};
const ratio = (a, b) => {
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
};
const background = (el) => {
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
  }
  let bg = [255, 255, 255, 1];
  for (const layer of layers.reverse()) bg = over(layer, bg);
  return bg;
};
const shown = (el) => {
  if (!el.getClientRects().length) return false;
  const cs = getComputedStyle(el);
  return cs.visibility !== "hidden" && cs.display !== "none" && Number(cs.opacity) > 0;
};
const describe = (el) => {
  const bits = [el.tagName.toLowerCase()];
  if (el.id) bits.push("#" + el.id);
  if (el.getAttribute("name")) bits.push(`[name=${el.getAttribute("name")}]`);
  const text = (el.innerText || el.value || "").trim().slice(0, 40);
  if (text) bits.push(JSON.stringify(text));
  return bits.join("");
};
"""

STRUCTURE_JS = (
    "() => {"
    + COLOUR_JS
    + r"""
  const problems = [];
  if (!(document.documentElement.getAttribute("lang") || "").trim()) problems.push("<html> has no lang");
  const h1 = document.querySelectorAll("h1").length;
  if (h1 !== 1) problems.push(`${h1} <h1> elements, not one`);
  const mains = document.querySelectorAll("main, [role=main]").length;
  if (mains !== 1) problems.push(`${mains} <main> landmarks, not one`);
  const labelText = (el) => [...(el.labels || [])].map((l) => l.innerText.trim()).join(" ");
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    const byLabel = el.labels && el.labels.length && labelText(el);
    const byAria = (el.getAttribute("aria-label") || "").trim();
    const byRef = (el.getAttribute("aria-labelledby") || "").split(/\s+/).filter(Boolean)
      .map((id) => (document.getElementById(id) || {}).textContent || "").join("").trim();
    if (!(byLabel || byAria || byRef)) problems.push(`no accessible name: ${describe(el)}`);
  }
  for (const el of document.querySelectorAll("button, input[type=submit], input[type=button], [role=button]")) {
    const text = (el.innerText || el.value || "").trim() || (el.getAttribute("aria-label") || "").trim();
    if (!text) problems.push(`a button without text: ${describe(el)}`);
  }
  for (const el of document.querySelectorAll("a[href]")) {
    const text = (el.innerText || el.textContent || "").trim() || (el.getAttribute("aria-label") || "").trim();
    if (!text) problems.push(`a link without text: ${el.getAttribute("href")}`);
  }
  for (const img of document.querySelectorAll("img, input[type=image], [role=img]")) {
    if (!img.hasAttribute("alt") && !img.getAttribute("aria-label")) problems.push(`an image without alt: ${img.getAttribute("src")}`);
  }
  const seen = new Map();
  for (const el of document.querySelectorAll("[id]")) seen.set(el.id, (seen.get(el.id) || 0) + 1);
  for (const [id, n] of seen) if (n > 1) problems.push(`id ${id} used ${n} times`);
  const nav = [...document.querySelectorAll("nav a[href]")].map((a) => a.getAttribute("href"));
  return {problems, nav};
}"""
)

CONTRAST_JS = (
    "() => {"
    + COLOUR_JS
    + r"""
  const failures = [];
  let checked = 0;
  const large = (cs) => {
    const px = parseFloat(cs.fontSize), bold = Number(cs.fontWeight) >= 700;
    return px >= 24 || (bold && px >= 18.66);
  };
  const check = (el, colour, text, what) => {
    const cs = getComputedStyle(el);
    const bg = background(el);
    const fg = over(parse(colour), bg);
    const need = large(cs) ? 3 : 4.5;
    const r = ratio(fg, bg);
    checked += 1;
    if (r + 1e-9 < need) failures.push(`${what} ${JSON.stringify(text.slice(0, 40))} in ${describe(el)}: ${r.toFixed(2)}:1 < ${need}:1 (${colour} on rgb(${bg.slice(0, 3).map(Math.round).join(",")}))`);
  };
  const onPage = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.right > 0 && r.bottom > 0;  // not moved off-screen
  };
  for (const el of document.body.querySelectorAll("*")) {
    if (["SCRIPT", "STYLE", "OPTION", "OPTGROUP", "TEMPLATE"].includes(el.tagName)) continue;
    if (!shown(el) || !onPage(el)) continue;
    const own = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join("").trim();
    if (own) check(el, getComputedStyle(el).color, own, "text");
    if (["INPUT", "SELECT", "TEXTAREA"].includes(el.tagName) && el.type !== "hidden") {
      const value = el.tagName === "SELECT" ? (el.selectedOptions[0] || {}).text || "" : el.value;
      if (value && !["checkbox", "radio"].includes(el.type)) check(el, getComputedStyle(el).color, value, "value");
      if (el.placeholder && !el.value) check(el, getComputedStyle(el, "::placeholder").color, el.placeholder, "placeholder");
    }
  }
  return {failures, checked};
}"""
)

#: Marks every element Tab should reach, in DOM order, and remembers its unfocused look.
TABBABLE_JS = (
    "() => {"
    + COLOUR_JS
    + r"""
  if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
  const candidates = document.querySelectorAll(
    "a[href], button, input, select, textarea, summary, iframe, [tabindex], [contenteditable=true]");
  const list = [];
  for (const el of candidates) {
    if (el.disabled || el.type === "hidden" || el.closest("[inert]")) continue;
    const t = el.getAttribute("tabindex");
    if (t !== null && Number(t) < 0) continue;
    if (!shown(el)) continue;
    el.setAttribute("data-a11y", String(list.length));
    const cs = getComputedStyle(el);
    list.push({what: describe(el), look: [cs.outlineStyle, cs.outlineWidth, cs.outlineColor, cs.boxShadow].join("|")});
  }
  return list;
}"""
)

#: The focused element: its mark, its look and the contrast of its indicator with what is around it.
FOCUSED_JS = (
    "() => {"
    + COLOUR_JS
    + r"""
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const cs = getComputedStyle(el);
  const around = background(el.parentElement || el);
  const colours = [];
  if (cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) > 0) colours.push(cs.outlineColor);
  for (const m of (cs.boxShadow || "").matchAll(/rgba?\([^)]+\)/g)) colours.push(m[0]);
  const best = Math.max(0, ...colours.map((c) => ratio(over(parse(c), around), around)));
  return {mark: el.getAttribute("data-a11y"), what: describe(el), type: el.type || "",
          look: [cs.outlineStyle, cs.outlineWidth, cs.outlineColor, cs.boxShadow].join("|"),
          contrast: best};
}"""
)


def _url(world: Any, path: str) -> str:
    return path.format(grant=world.grant_id, alert=world.alert_id, agreement=1)


def _open(desk: Any, world: Any, seid: str, path: str) -> Any:
    """``path`` in ``seid``'s browser (signed in again if the idle session ended meanwhile)."""
    if not seid:
        page = desk.browser.new_context(base_url=desk.base_url,
                                        viewport={"width": 1280, "height": 900}).new_page()
        page.goto(path)
        return page
    page = desk.sign_in(seid)
    page.goto(path)
    if "/signin" in page.url:  # the shared session sat idle too long while other tests ran
        page.get_by_label("SEID").fill(seid)
        page.get_by_label("Password").fill(world.creds[seid]["password"])
        page.get_by_label("One-time code").fill(world.code(seid))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(re.escape(path.split("?")[0]) + r"$"))
    page.wait_for_load_state("load")
    return page


def _nav_for(roles: set[str]) -> list[str]:
    return [href for href, _, who in NAV if not who or who & roles]


def _shot_name(seid: str, path: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"
    return f"a11y-{seid.lower() or 'visitor'}-{slug}"


def test_every_page_of_every_roles_navigation_is_checked():
    """A page added to the navigation of any role must be added to PLAN (and so checked)."""
    planned = {path for _, path in PLAN}
    roles = {role for _, _, role_text, _ in PEOPLE.values() for role in role_text.split(",")}
    assert roles >= {"examiner", "manager", "privacy_analyst", "privacy_officer",
                     "authorizing_official", "auditor", "security_admin", "csr"}
    missing = sorted({href for role in roles for href in _nav_for({role})} - planned)
    assert not missing, f"pages in the navigation that no accessibility test visits: {missing}"


def _tab_through(page: Any, where: str) -> list[str]:
    """Tab from the first interactive element to the last; problems found on the way."""
    problems: list[str] = []
    order = page.evaluate(TABBABLE_JS)
    assert order, f"{where}: nothing to operate"
    page.evaluate("() => document.querySelector('[data-a11y=\"0\"]').focus()")
    expected = 0
    last = None
    presses = 0
    while True:
        now = page.evaluate(FOCUSED_JS)
        if now is None or now["mark"] is None:
            problems.append(f"Tab order: expected {order[expected]['what']}, the focus went "
                            f"to {now['what'] if now else 'the browser, off the page'}")
            break
        mark = int(now["mark"])
        if mark != last:  # a date field takes several Tab presses (day, month, year)
            if mark != expected:
                problems.append(f"Tab order: expected {order[expected]['what']}, "
                                f"got {now['what']}")
                break
            if now["look"] == order[mark]["look"]:
                problems.append(f"no visible focus indicator on {now['what']}")
            elif now["contrast"] < 3:
                problems.append(f"focus indicator of {now['what']} has "
                                f"{now['contrast']:.2f}:1 contrast with its surroundings")
            last = mark
            expected += 1
            if expected == len(order):
                break
        page.keyboard.press("Tab")
        presses += 1
        if presses > 4 * len(order) + 10:
            problems.append(f"Tab did not reach {order[expected]['what']}")
            break
    return problems


@pytest.mark.parametrize(("seid", "path"), PLAN, ids=[f"{s or 'visitor'}:{p}" for s, p in PLAN])
def test_page_is_accessible(desk, world, seid, path):
    page = _open(desk, world, seid, _url(world, path))
    try:
        _check_page(page, seid, path)
    finally:  # leave the shared browser where signing in left it, for the other tests
        if seid:
            page.goto("/research")
        else:
            page.context.close()


def _check_page(page: Any, seid: str, path: str) -> None:
    where = f"{seid or 'visitor'} {path}"
    shot(page, _shot_name(seid, path))
    structure = page.evaluate(STRUCTURE_JS)
    problems = list(structure["problems"])
    if seid:  # the navigation is the one of the employee's roles
        roles = set(PEOPLE[seid][2].split(","))
        if structure["nav"] != _nav_for(roles):
            problems.append(f"navigation {structure['nav']} is not {_nav_for(roles)}")
    contrast = page.evaluate(CONTRAST_JS)
    assert contrast["checked"] > 5, f"{where}: no text measured"
    problems += contrast["failures"]
    problems += _tab_through(page, where)
    assert not problems, f"{where}:\n  " + "\n  ".join(problems)


def test_the_research_prompt_works_from_the_keyboard_alone(desk, world):
    page = _open(desk, world, "EXB01", "/research")
    focused = page.evaluate("() => document.activeElement && document.activeElement.id")
    assert focused == "line", "the prompt does not have the focus when the page opens"
    page.keyboard.type(f"ENMOD {CASE_TIN} case=BR-1")
    page.keyboard.press("Enter")
    answer = page.get_by_role("region", name="Answer")
    expect(answer).to_contain_text("ENMOD")
    expect(page.locator(".screen")).to_contain_text("FILING STATUS")
    # the answer is announced (a live region) and the prompt keeps the focus for the next one
    assert page.evaluate("() => document.getElementById('result').getAttribute('aria-live')")
    expect(page.locator("#line")).to_be_focused()
    _no_problems(page, "EXB01 /research with an answer")
    page.keyboard.press("ControlOrMeta+a")  # the last line stays in the prompt, to edit or replace
    page.keyboard.type(f"TXMOD {CASE_TIN} 2023 case=BR-1")
    page.keyboard.press("Enter")
    expect(page.locator(".screen")).to_contain_text("TRANSACTIONS")
    expect(page.locator("#line")).to_be_focused()
    # a line from the history runs again from the keyboard: Tab to it, Enter
    again = page.get_by_role("button", name=f"Run again: ENMOD {CASE_TIN} case=BR-1")
    for _ in range(60):
        if again.evaluate("(el) => el === document.activeElement"):
            break
        page.keyboard.press("Tab")
    else:
        pytest.fail("Tab never reached the history's 'Run again' button")
    page.keyboard.press("Enter")
    expect(page.locator(".screen")).to_contain_text("FILING STATUS")
    shot(page, "a11y-research-keyboard")
    # a refusal is announced (role=alert) and as readable as the rest
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(f"ENMOD {OTHER_TIN}")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert").filter(has_text="NO_BUSINESS_NEED")).to_be_visible()
    _no_problems(page, "EXB01 /research with a refusal")
    shot(page, "a11y-research-refused")


def test_a_refused_sign_in_is_announced_and_readable(browser, base_url):
    ctx = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.goto("/signin")
    page.keyboard.type("NOBODY")  # the SEID field has the focus when the page opens
    page.keyboard.press("Tab")
    page.keyboard.type("not the password")
    page.keyboard.press("Tab")
    page.keyboard.type("000000")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("AUTH_FAILED")
    _no_problems(page, "visitor /signin refused")
    shot(page, "a11y-signin-refused")
    ctx.close()


def _no_problems(page: Any, where: str) -> None:
    """Structure and contrast of the page as it is now (after an answer came in)."""
    problems = page.evaluate(STRUCTURE_JS)["problems"] + page.evaluate(CONTRAST_JS)["failures"]
    assert not problems, f"{where}:\n  " + "\n  ".join(problems)
