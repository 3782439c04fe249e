"""Helpers shared by the sign-in tests (`test_auth_*.py`); this module holds no tests itself.

A `browser` is an HTTP client on the real app that keeps no cookies of its own: each test
sends the session cookie it means to send (`SignedIn.headers`), so what travels is plain
to see. Each browser comes from its own address (`client=`), so the per-address sign-in
limit of one test never touches another. Tests that move time build their own app whose
`Services.clock` is a `FakeClock`; everything else is the real app on the real database.
"""

from __future__ import annotations

import http.cookiejar
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client

from api.auth import COOKIE, AuthConfig
from db.passwords import set_password
from db.users import User, create_user
from tests.conftest import ALWAYS_OPEN, AUDIT_KEY, TASK_QUEUE, new_id

PASSWORD = "tawny heron over the Fujiang 1917"


class FakeClock:
    """`Services.clock` for tests: now, until told to move."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def auth_app(client: Client, pool: asyncpg.Pool, clock: FakeClock | None = None, auth: AuthConfig | None = None,
             public_url: str = "http://accord.test"):
    """The real app (as the conftest builds it) with its own clock and sign-in settings."""
    from api.app import create_app
    from api.services import Services

    extra: dict[str, Any] = {"auth": auth or AuthConfig()}
    if clock is not None:
        extra["clock"] = clock
    return create_app(Services(pool=pool, client=client, task_queue=TASK_QUEUE, audit_key=AUDIT_KEY,
                               public_url=public_url, reminder_hour=0, reminder_until_hour=24,
                               leadership_department="Leadership office (tests)", calendar_name=ALWAYS_OPEN,
                               **extra))


def new_address() -> str:
    return f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"


def browser(app, base_url: str = "http://accord.test", address: str | None = None,
            **headers: str) -> httpx.AsyncClient:
    """A client that stores no cookies (the session cookie is sent explicitly) from its own address."""
    jar = http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    transport = httpx.ASGITransport(app=app, client=(address or new_address(), 50000))
    return httpx.AsyncClient(transport=transport, base_url=f"{base_url}/api/v1", cookies=jar, timeout=60,
                             headers=header_names(headers))


def header_names(headers: dict[str, str]) -> dict[str, str]:
    """Keyword arguments as header names: `User_Agent` is `User-Agent`."""
    return {k.replace("_", "-"): v for k, v in headers.items()}


async def new_user(pool: asyncpg.Pool, password: str | None = PASSWORD, username: str | None = None,
                   display_name: str = "Officer Zhao") -> User:
    async with pool.acquire() as conn:
        user = await create_user(conn, username or new_id("officer-"), display_name, "liaison_officer")
        if password is not None:
            await set_password(conn, user.id, password)
    return user


def set_cookie_header(response: httpx.Response) -> str | None:
    """The Set-Cookie header of the session cookie, as sent."""
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}=")]
    assert len(found) <= 1, found
    return found[0] if found else None


def cookie_attributes(header: str) -> tuple[str, dict[str, str]]:
    """(value, {attribute name as sent: value or ""}) of one Set-Cookie header."""
    first, *rest = [part.strip() for part in header.split(";")]
    value = first.split("=", 1)[1]
    attributes = {}
    for part in rest:
        name, _, attribute = part.partition("=")
        attributes[name] = attribute
    return value, attributes


@dataclass
class SignedIn:
    session_id: str
    csrf_token: str
    answer: dict[str, Any]

    def headers(self, csrf: bool = True, **extra: str) -> dict[str, str]:
        """The cookie (and, for writes, the CSRF token) a page of ours would send."""
        headers = {"Cookie": f"{COOKIE}={self.session_id}"}
        if csrf:
            headers["X-CSRF-Token"] = self.csrf_token
        return {**headers, **header_names(extra)}


async def sign_in(http: httpx.AsyncClient, username: str, password: str = PASSWORD,
                  **headers: str) -> SignedIn:
    r = await http.post("/auth/login", json={"username": username, "password": password},
                        headers=header_names(headers))
    assert r.status_code == 200, r.text
    cookie = set_cookie_header(r)
    assert cookie is not None
    value, _ = cookie_attributes(cookie)
    return SignedIn(value, r.json()["csrf_token"], r.json())


async def events(pool: asyncpg.Pool, user_agent: str) -> list[dict[str, Any]]:
    """The audit events requests with this user agent caused, oldest first."""
    return [dict(r) for r in await pool.fetch(
        "SELECT * FROM audit_events WHERE user_agent = $1 ORDER BY seq", user_agent)]


def agent() -> str:
    return f"auth-test/{uuid.uuid4().hex}"
