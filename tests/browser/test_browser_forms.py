"""What forms owe the user, in a real browser: a refused form keeps what was typed and says what
is wrong next to the field; a double click (with or without JavaScript) creates one record;
another department's cooperation is the not-found page; a session that ends while a form is
being filled in leads back to that page after signing in again.
(The same over plain HTTP: tests/test_web_cooperation.py.)"""

from __future__ import annotations

import re

from playwright.async_api import Locator, Page, expect

from tests.browser.conftest import Staff
from tests.test_api_support import open_cooperation, world

NEW = "/cooperations/new"
OPENED = re.compile(r"/cooperations/[0-9a-f]+$")


def field(page: Page | Locator, label: str) -> Locator:
    """The control labelled exactly `label`, with or without the required mark (" *")."""
    return page.get_by_label(re.compile(rf"^{re.escape(label)}( \*)?$"))


async def fill_new_cooperation(me: Staff, w, title: str) -> None:
    """Everything of the "open a cooperation" form but the title, as a person types it."""
    page = me.page
    await field(page, me._("Title")).fill(title)
    await field(page, me._("Lead party (government side)")).select_option(label=w.government["name"])
    await field(page, me._("Partner company")).select_option(label=w.company["name"])
    await field(page, me._("Areas of cooperation")).fill("新能源、智能制造")
    await field(page, me._("Liaison officer")).fill("赵六")
    await field(page, me._("Started on")).fill("2026-05-01")
    await field(page, me._("Target signing date")).fill("2026-09-30")


async def cooperations_titled(pool, title: str) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM cooperations WHERE title = $1", title)


async def test_a_refused_form_keeps_what_was_typed_and_says_why_next_to_the_field(api, sign_in, axe_check, shoot):
    w = await world(api.http)
    me = await sign_in()
    page = me.page
    await page.goto(NEW)
    title = field(page, me._("Title"))

    # Left empty, the browser itself stops the form (the field is `required`).
    await fill_new_cooperation(me, w, "")
    await page.get_by_role("button", name=me._("Open the cooperation")).click()
    await expect(page).to_have_url(me.url(NEW))
    assert await title.evaluate("input => input.validity.valueMissing"), "an empty title is not refused by the browser"

    # Only spaces pass the browser; the server refuses them and shows the form again.
    await title.fill("   ")
    await page.get_by_role("button", name=me._("Open the cooperation")).click()
    summary = page.get_by_role("alert")
    await expect(summary).to_be_focused()  # read out first by a screen reader
    await expect(summary).to_contain_text(me._("This field is required."))
    await expect(title).to_have_attribute("aria-invalid", "true")
    await expect(title).to_have_accessible_description(re.compile(re.escape(me._("This field is required."))))
    await expect(field(page, me._("Liaison officer"))).to_have_value("赵六")
    await expect(field(page, me._("Areas of cooperation"))).to_have_value("新能源、智能制造")
    await expect(field(page, me._("Started on"))).to_have_value("2026-05-01")
    await expect(field(page, me._("Target signing date"))).to_have_value("2026-09-30")
    await expect(field(page, me._("Lead party (government side)")).locator("option:checked")).to_have_text(
        w.government["name"])
    await expect(field(page, me._("Partner company")).locator("option:checked")).to_have_text(w.company["name"])
    await axe_check(page)
    await shoot(page, "cooperation-new-refused")

    # The summary's link leads to the field.
    await summary.get_by_role("link").click()
    await expect(title).to_be_focused()


async def test_a_double_click_opens_one_cooperation(api, pool, sign_in):
    w = await world(api.http)
    me = await sign_in()
    await me.page.goto(NEW)
    title = f"双击测试 {w.suffix}"
    await fill_new_cooperation(me, w, title)
    await me.page.get_by_role("button", name=me._("Open the cooperation")).dblclick()
    await me.page.wait_for_url(OPENED)
    await expect(me.page.get_by_role("heading", level=1)).to_have_text(title)
    assert await cooperations_titled(pool, title) == 1, "a double click opened two cooperations"


async def test_without_javascript_a_form_sent_again_opens_one_cooperation(api, pool, sign_in):
    # Without accord.js nothing disables the button: the server alone applies a form once.
    w = await world(api.http)
    me = await sign_in(java_script_enabled=False)
    page = me.page
    await page.goto(NEW)
    title = f"无脚本重复提交 {w.suffix}"
    await fill_new_cooperation(me, w, title)
    sent = await page.locator("form[action='/cooperations/new']").evaluate(
        "form => Object.fromEntries(new FormData(form))")
    await page.get_by_role("button", name=me._("Open the cooperation")).dblclick()
    await page.wait_for_url(OPENED)
    opened = page.url.removeprefix(me.base_url)

    # The same form sent twice more, as a reload of the POST or the back button would send it.
    for _ in range(2):
        again = await me.context.request.post(NEW, form=sent, headers={"Origin": me.base_url}, max_redirects=0)
        assert again.status == 303, f"the repeated form answered {again.status}"
        assert again.headers["location"] == opened, "the repeated form went elsewhere"
    assert await cooperations_titled(pool, title) == 1, "the same form opened several cooperations"


async def test_another_departments_cooperation_is_the_not_found_page(api, sign_in):
    coop = await open_cooperation(api.http)
    stranger = await sign_in(department="Another Bureau 其他局")
    answer = await stranger.page.goto(coop.path)
    assert answer is not None and answer.status == 404, "another department's cooperation is not 404"
    await expect(stranger.page.get_by_role("heading", level=1)).to_have_text(stranger._("Not found"))
    await expect(stranger.page.get_by_text(coop.state["title"])).to_have_count(0)


async def test_a_session_that_ends_during_a_form_leads_back_to_the_page(api, pool, sign_in):
    coop = await open_cooperation(api.http)
    me = await sign_in()
    page = me.page
    await page.goto(coop.path)
    form = page.locator("details.action").filter(has=page.locator("summary").filter(
        has_text=me._("Record a meeting, inspection visit or other event")))
    await form.locator("summary").click()
    await field(form, me._("Place")).fill("绵阳科技城")
    async with pool.acquire() as conn:
        await conn.execute("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id = $1",
                           me.user_id)
    await form.get_by_role("button", name=me._("Record"), exact=True).click()
    await page.wait_for_url(me.url(f"/login?next={coop.path}&expired=1"))
    await expect(page.get_by_role("heading", level=2)).to_have_text(me._("Your session has ended"))
    await me.submit_sign_in()
    await page.wait_for_url(me.url(coop.path))
    await expect(page.get_by_role("heading", level=1)).to_have_text(coop.state["title"])
