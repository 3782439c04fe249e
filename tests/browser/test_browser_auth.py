"""Signing in and out in a real browser: the sign-in form, the language switch, a wrong password,
an ended session that returns the user to their page, and the skip link."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from web.i18n import HTML_LANG, LANGUAGES

# A page with a query: the whole address, not only the path, must come back after signing in again.
WAS_ON = "/?from=browser-test"


async def test_sign_in_switch_language_and_sign_out(staff, axe_check):
    # A browser that asks for neither of our languages gets Chinese.
    me = await staff(locale="fr-FR")
    page = me.page
    await page.goto("/")
    await page.wait_for_url(me.url("/login?next=/"))
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await me.submit_sign_in()
    await page.wait_for_url(me.url("/"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("仪表板")
    await axe_check(page)

    await page.get_by_role("button", name="English").click()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    await axe_check(page)

    await page.get_by_role("button", name="中文").click()
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await expect(page.get_by_role("heading", level=1)).to_have_text("仪表板")

    await page.get_by_role("button", name="退出登录").click()
    await page.wait_for_url(me.url("/login"))
    await page.goto("/")
    await page.wait_for_url(me.url("/login?next=/"))  # signed out: not "your session has ended"
    await expect(page.get_by_role("heading", name="会话已结束")).to_have_count(0)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_wrong_password_keeps_the_username_and_says_why(language, staff, axe_check, shoot):
    me = await staff(language=language)
    await me.page.goto("/login")
    await axe_check(me.page)
    await me.submit_sign_in(password="not the password")
    summary = me.page.locator(".error-summary")
    await expect(summary).to_contain_text(me._("Wrong username or password."))
    await expect(summary).to_be_focused()  # announced by screen readers
    await expect(me.page.get_by_label(me._("Username"))).to_have_value(me.username)
    await expect(me.page.get_by_label(me._("Password"))).to_have_value("")
    await expect(me.page.locator("html")).to_have_attribute("lang", HTML_LANG[language])
    await axe_check(me.page)
    await shoot(me.page, "login-wrong-password")


@pytest.mark.parametrize("language", LANGUAGES)
async def test_an_ended_session_signs_in_again_and_returns_to_the_page(language, sign_in, pool, axe_check, shoot):
    me = await sign_in(language=language)
    await me.page.goto(WAS_ON)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id = $1",
                           me.user_id)
    await me.page.reload()
    await me.page.wait_for_url(me.url("/login?next=/%3Ffrom%3Dbrowser-test&expired=1"))
    await expect(me.page.get_by_role("heading", level=2)).to_have_text(me._("Your session has ended"))
    await axe_check(me.page)
    await shoot(me.page, "login-session-ended")
    await me.submit_sign_in()
    await me.page.wait_for_url(me.url(WAS_ON))
    await expect(me.page.get_by_role("heading", level=1)).to_have_text(me._("Dashboard"))


@pytest.mark.parametrize("path", ["/", "/login"])
async def test_the_first_tab_reaches_the_skip_link_which_moves_focus_to_the_content(path, sign_in):
    me = await sign_in()
    await me.page.goto(path)
    await me.page.keyboard.press("Tab")
    skip = me.page.get_by_role("link", name=me._("Skip to content"))
    await expect(skip).to_be_focused()
    await expect(skip).to_be_in_viewport()  # shown when focused, not only to screen readers
    await me.page.keyboard.press("Enter")
    await expect(me.page.locator("main")).to_be_focused()
