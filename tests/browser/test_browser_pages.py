"""Every page of tests/browser/pages.py, and the error page, in a real browser in both languages:
it answers, speaks the user's language, passes axe-core and is saved as a screenshot; the pages
of the list also run without a console error (a Content-Security-Policy refusal is one; the
404 page cannot, Chromium reports its own status as one)."""

from __future__ import annotations

import pytest
from playwright.async_api import Page

from tests.browser.pages import PAGES, Visit
from web.i18n import HTML_LANG, LANGUAGES

SHOWN_AS = "王芳"  # one display name for every screenshot, so a page's screenshots compare across runs


def console_errors(page: Page) -> list[str]:
    """What the page reports as broken from now on: console errors (CSP refusals among them)
    and uncaught script exceptions."""
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: seen.append(str(error)))
    return seen


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("visit", PAGES, ids=lambda visit: visit.name)
async def test_every_page_in_both_languages(visit: Visit, language, api, sign_in, axe_check, shoot):
    me = await sign_in(visit.roles, visit.department, language, SHOWN_AS)
    path = await visit.resolve(api)
    errors = console_errors(me.page)
    answer = await me.page.goto(path)
    assert answer is not None, f"{path} did not load"
    assert answer.status == 200, f"{path} answered {answer.status}"
    assert await me.page.get_attribute("html", "lang") == HTML_LANG[language], "the page is in another language"
    await axe_check(me.page)
    await shoot(me.page, visit.name)
    assert errors == [], f"{path} reported errors: {errors}"


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_not_found_page(language, sign_in, axe_check, shoot):
    me = await sign_in(language=language, display_name=SHOWN_AS)
    answer = await me.page.goto("/no-such-page")
    assert answer is not None, "/no-such-page did not load"
    assert answer.status == 404, "an unknown address is not 404"
    assert await me.page.get_attribute("html", "lang") == HTML_LANG[language], "the page is in another language"
    await me.page.get_by_role("heading", level=1, name=me._("Not found")).wait_for()
    await axe_check(me.page)
    await shoot(me.page, "not-found")


async def test_axe_check_runs_under_the_pages_policy_and_catches_a_violation(sign_in, axe_check):
    # axe-core is injected past the strict Content-Security-Policy; were it blocked, every sweep
    # above would pass without checking anything.
    me = await sign_in()
    await me.page.evaluate("document.querySelector('main').append(Object.assign("
                           "document.createElement('input'), {type: 'text'}))")
    with pytest.raises(pytest.fail.Exception, match=r"\[critical\] label"):
        await axe_check(me.page)
