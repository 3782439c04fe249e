"""Real-browser tests: Debian's Chromium, driven by Playwright, on the app served over real HTTP.

Once per session: a uvicorn server on 127.0.0.1 (a free port) in pytest's own event loop,
serving an app with the same services as the `app` fixture (tests/conftest.py) except that
its public URL is the server's own, and one headless Chromium. Each test gets new browser
contexts (their own cookies), closed when it ends.

The browser is /usr/bin/chromium from Debian (`make test` installs it); Playwright's own
browser download is never used. Without that file every browser test is skipped.

Fixtures (session-wide first, then per test):
  live_server -> LiveServer(url, app)     the app over HTTP; url is http://127.0.0.1:<port>
  chromium -> playwright Browser          the one headless Chromium
  new_context(language="zh", **options) -> BrowserContext   relative URLs go to live_server
  staff(roles=("liaison_officer",), department=API_DEPARTMENT, language="zh", display_name=None,
        **context_options) -> Staff       a user with a password and a page of their own; not signed in
  sign_in(same arguments) -> Staff        the same, signed in through the sign-in form, on "/"
  shoot(page, name) -> Path               full-page PNG: test-artifacts/screenshots/<language>/<name>.png
  axe_check(page) -> None                 fails listing every "serious" or "critical" axe-core violation
`Staff` has user_id, username, language, context, page, base_url; `me._("msgid")` (the text
as the pages show it to them), `await me.submit_sign_in(password=PASSWORD)`, `me.url(path)`.
A test that uses `shoot` is marked `screenshots` (`make screenshots` runs those).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import pytest_asyncio
import uvicorn
from axe_playwright_python.async_playwright import Axe
from fastapi import FastAPI
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.conftest import API_DEPARTMENT
from tests.web_support import PASSWORD, new_staff
from web.i18n import HTML_LANG, gettext_for

CHROMIUM = Path("/usr/bin/chromium")
# A closed network: no sandbox as root in CI, no GPU, and none of the background calls to
# Google's services (QUIC, component updates, sync) that would hang or time out here.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
BROWSER_LOCALE = {"zh": "zh-CN", "en": "en-GB"}
"""The browser's language (Accept-Language): what the sign-in page speaks before anyone signs in."""
GRAVE = ("serious", "critical")
ACTION_TIMEOUT_MS = 10_000  # a local server answers in milliseconds; fail fast instead of after 30 s


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "screenshots: takes screenshots of pages (`make screenshots` runs these)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "shoot" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.screenshots)


# ---------------------------------------------------------------- the server and the browser


class _Server(uvicorn.Server):
    """Uvicorn inside pytest's event loop: it leaves Ctrl-C and SIGTERM to pytest."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class LiveServer:
    url: str  # http://127.0.0.1:<port>, no trailing slash
    app: FastAPI


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def live_server(app: FastAPI) -> AsyncIterator[LiveServer]:
    """The app over real HTTP. Its public URL is its own address, so the Origin a browser sends is ours."""
    from api.app import create_app

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    served = create_app(replace(app.state.services, public_url=url))
    server = _Server(uvicorn.Config(served, log_level="warning", access_log=False, timeout_graceful_shutdown=5))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    deadline = asyncio.get_running_loop().time() + 30
    while not server.started:
        if task.done():
            task.result()  # the reason it did not start
            raise RuntimeError("the test web server stopped while starting")
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError("the test web server did not start within 30 s")
        await asyncio.sleep(0.01)
    yield LiveServer(url, served)
    server.should_exit = True
    await task
    listener.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium() -> AsyncIterator[Browser]:
    """One headless Chromium for the whole session (each test opens its own contexts)."""
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}: the browser tests need Debian's chromium (`make test` installs it; "
                    "or run `apt-get install chromium`)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest_asyncio.fixture(loop_scope="session")
async def new_context(chromium: Browser, live_server: LiveServer) -> AsyncIterator[Callable[..., Awaitable[BrowserContext]]]:
    """`await new_context(language="zh", **options)`: a fresh browser context (no cookies) whose
    relative URLs go to the live server and whose browser language is `language`; `options` are
    Playwright's `Browser.new_context` options (they win over these). Closed after the test."""
    opened: list[BrowserContext] = []

    async def open_context(language: str = "zh", **options: object) -> BrowserContext:
        settings = {"base_url": live_server.url, "locale": BROWSER_LOCALE[language], **options}
        context = await chromium.new_context(**settings)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        opened.append(context)
        return context

    yield open_context
    for context in opened:
        await context.close()


# ---------------------------------------------------------------- staff in a browser


@dataclass
class Staff:
    """A user with a password, and a page of their own browser context."""

    user_id: str
    username: str
    language: str  # their setting, and their browser's language
    context: BrowserContext
    page: Page
    base_url: str

    def _(self, message: str, **values: object) -> str:
        """A message as the pages show it to this user (the real catalog)."""
        return gettext_for(self.language)(message, **values)

    async def submit_sign_in(self, password: str = PASSWORD) -> None:
        """Fill in and send the sign-in form shown on the page, as a person would: by its labels
        and its button. The caller waits for where it leads."""
        page = self.page
        await page.get_by_label(self._("Username")).fill(self.username)
        await page.get_by_label(self._("Password")).fill(password)
        await page.get_by_role("button", name=self._("Sign in"), exact=True).click()

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest_asyncio.fixture(loop_scope="session")
async def staff(pool, live_server: LiveServer, new_context) -> Callable[..., Awaitable[Staff]]:
    """`await staff(roles=("liaison_officer",), department=API_DEPARTMENT, language="zh", display_name=None,
    **context_options)`: a new user with the password tests.web_support.PASSWORD and that language
    setting, with a blank page in a new browser context speaking the same language (unless
    `context_options` say otherwise, e.g. locale="fr-FR" or a viewport). Not signed in."""

    async def make(roles: Sequence[str] = ("liaison_officer",), department: str | None = API_DEPARTMENT,
                   language: str = "zh", display_name: str | None = None, **context_options: object) -> Staff:
        user_id, username = await new_staff(pool, list(roles), department, display_name)
        async with pool.acquire() as conn:
            await conn.execute("UPDATE users SET language = $2 WHERE id = $1", user_id, language)
        context = await new_context(language, **context_options)
        return Staff(user_id, username, language, context, await context.new_page(), live_server.url)

    return make


@pytest_asyncio.fixture(loop_scope="session")
async def sign_in(staff) -> Callable[..., Awaitable[Staff]]:
    """`await sign_in(roles=("liaison_officer",), department=API_DEPARTMENT, language="zh", display_name=None,
    **context_options)`: like `staff`, then signed in through the real sign-in form; the page is on the dashboard."""

    async def signed_in(*args: object, **kwargs: object) -> Staff:
        me = await staff(*args, **kwargs)
        await me.page.goto("/login")
        await me.submit_sign_in()
        await me.page.wait_for_url(me.url("/"))
        return me

    return signed_in


# ---------------------------------------------------------------- screenshots and accessibility

_LANGUAGE_OF_HTML = {tag: language for language, tag in HTML_LANG.items()}


@pytest.fixture
def shoot() -> Callable[[Page, str], Awaitable[Path]]:
    """`await shoot(page, name)`: a full-page screenshot in test-artifacts/screenshots/<language>/<name>.png,
    the language being the page's own (<html lang>). Answers the file's path."""

    async def take(page: Page, name: str) -> Path:
        tag = await page.get_attribute("html", "lang")
        if tag not in _LANGUAGE_OF_HTML:
            pytest.fail(f"{page.url} has <html lang={tag!r}>, not one of {sorted(_LANGUAGE_OF_HTML)}")
        path = SCREENSHOTS / _LANGUAGE_OF_HTML[tag] / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=path, full_page=True)
        return path

    return take


_AXE = Axe()


@pytest.fixture
def axe_check() -> Callable[[Page], Awaitable[None]]:
    """`await axe_check(page)`: run axe-core on the page as it is now; fail listing every violation
    of impact "serious" or "critical" (minor and moderate ones are not failures).

    axe-core goes in through Playwright's `page.evaluate` (DevTools' Runtime.evaluate), which the
    page's Content-Security-Policy (`script-src 'self'`) does not govern: no `bypass_csp` needed,
    so the pages are tested under their real policy."""

    async def check(page: Page) -> None:
        results = await _AXE.run(page)
        grave = [v for v in results.response["violations"] if v["impact"] in GRAVE]
        if grave:
            pytest.fail(f"axe-core on {page.url}:\n" + "\n".join(_describe(v) for v in grave), pytrace=False)

    return check


def _describe(violation: dict) -> str:
    where = "\n".join(f"    {', '.join(map(str, node['target']))}: {node.get('failureSummary', '').strip()}"
                      for node in violation["nodes"])
    return f"  [{violation['impact']}] {violation['id']}: {violation['help']} ({violation['helpUrl']})\n{where}"
