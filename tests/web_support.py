"""Helpers for the page tests (`test_web_*.py`): a signed-in browser-like HTTP client.

`PageClient` keeps cookies like a browser, follows no redirects on its own (tests check
Post/Redirect/Get), and reads hidden form fields out of the page it was shown, as a browser
submitting that form would send them. The real-browser tests are under tests/browser/.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html import unescape

import asyncpg
import httpx

from db.passwords import set_password
from db.users import create_user
from tests.conftest import new_id
from tests.test_auth_support import new_address

PASSWORD = "tawny heron over the Fujiang 1917"
BASE = "http://accord.test"


@dataclass
class PageClient:
    http: httpx.AsyncClient
    user_id: str
    username: str

    async def get(self, url: str, **kw) -> httpx.Response:
        return await self.http.get(url, **kw)

    async def submit(self, page: httpx.Response | str, action: str, data: dict[str, str],
                     form_key: str | None = None) -> httpx.Response:
        """Post a form of `page` to `action` as a browser would: with the form's hidden fields
        (csrf_token, form_key, version…) under the fields given."""
        text = page if isinstance(page, str) else page.text
        fields = {"csrf_token": hidden(text, "csrf_token"), **hidden_fields(text, action)}
        if form_key:
            fields["form_key"] = form_key
        return await self.http.post(action, data={**fields, **data}, headers={"Origin": BASE})


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found is not None, f"no hidden field {name}"
    return unescape(found.group(1))


def hidden_fields(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the (first) form of `page` that posts to `action`."""
    start = page.find(f'action="{action}"')
    if start < 0:
        return {}
    end = page.find("</form>", start)
    return {name: unescape(value) for name, value in
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page[start:end])}


async def new_staff(pool: asyncpg.Pool, roles: list[str], department: str | None,
                    display_name: str | None = None) -> tuple[str, str]:
    """A user with a password: (user id, username)."""
    username = new_id("web-")
    async with pool.acquire() as conn:
        user = await create_user(conn, username, display_name or f"Staff {username}", roles, department)
        await set_password(conn, user.id, PASSWORD)
    return user.id, username


@asynccontextmanager
async def signed_in(app, pool: asyncpg.Pool, roles: list[str], department: str | None,
                    display_name: str | None = None, language: str = "zh") -> AsyncIterator[PageClient]:
    user_id, username = await new_staff(pool, roles, department, display_name)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE users SET language = $2 WHERE id = $1", user_id, language)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(new_address(), 50000)),
                                 base_url=BASE, timeout=60) as http:
        answer = await http.post("/login", data={"username": username, "password": PASSWORD, "next": "/"},
                                 headers={"Origin": BASE})
        assert answer.status_code == 303, answer.text
        yield PageClient(http, user_id, username)
