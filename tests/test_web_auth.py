"""Sign-in pages: redirect to sign in, the session-expired page that returns the user, languages."""

from __future__ import annotations

import httpx

from api.auth import COOKIE
from tests.conftest import API_DEPARTMENT
from tests.test_auth_support import new_address
from tests.web_support import BASE, PASSWORD, new_staff, signed_in


def browser(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(new_address(), 50000)), base_url=BASE)


async def test_a_page_without_a_session_asks_to_sign_in_and_returns_there(app, pool):
    _, username = await new_staff(pool, ["liaison_officer"], API_DEPARTMENT)
    async with browser(app) as http:
        answer = await http.get("/cooperations?stage=negotiating")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=/cooperations%3Fstage%3Dnegotiating"
        page = await http.get(answer.headers["location"])
        assert page.status_code == 200 and "登录" in page.text and "会话已结束" not in page.text
        signed = await http.post("/login", data={"username": username, "password": PASSWORD,
                                                 "next": "/cooperations?stage=negotiating"}, headers={"Origin": BASE})
        assert signed.status_code == 303 and signed.headers["location"] == "/cooperations?stage=negotiating"
        assert COOKIE in http.cookies


async def test_an_ended_session_says_so_on_the_sign_in_page(app, pool):
    async with browser(app) as http:
        http.cookies.set(COOKIE, "a-session-that-ended-long-ago")
        answer = await http.get("/")
        assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/&expired=1"
        page = await http.get(answer.headers["location"])
        assert "会话已结束" in page.text


async def test_a_wrong_password_keeps_the_username_and_says_why(app, pool):
    _, username = await new_staff(pool, ["liaison_officer"], API_DEPARTMENT)
    async with browser(app) as http:
        answer = await http.post("/login", data={"username": username, "password": "wrong", "next": "/"},
                                 headers={"Origin": BASE})
        assert answer.status_code == 401
        assert f'value="{username}"' in answer.text and "用户名或密码错误" in answer.text
        assert COOKIE not in http.cookies


async def test_a_login_from_another_site_is_refused(app, pool):
    _, username = await new_staff(pool, ["liaison_officer"], API_DEPARTMENT)
    async with browser(app) as http:
        answer = await http.post("/login", data={"username": username, "password": PASSWORD, "next": "/"},
                                 headers={"Origin": "https://evil.example"})
        assert answer.status_code == 403 and COOKIE not in http.cookies


async def test_the_next_page_is_never_another_site(app, pool):
    _, username = await new_staff(pool, ["liaison_officer"], API_DEPARTMENT)
    async with browser(app) as http:
        answer = await http.post("/login", data={"username": username, "password": PASSWORD,
                                                 "next": "//evil.example/x"}, headers={"Origin": BASE})
        assert answer.status_code == 303 and answer.headers["location"] == "/"


async def test_switching_language_is_kept_for_the_user(app, pool):
    async with signed_in(app, pool, ["liaison_officer"], API_DEPARTMENT) as me:
        page = await me.get("/")
        assert 'lang="zh-CN"' in page.text and "仪表板" in page.text
        switched = await me.submit(page, "/language", {"language": "en", "next": "/"})
        assert switched.status_code == 303
        page = await me.get("/")
        assert '<html lang="en">' in page.text and "Dashboard" in page.text
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT language FROM users WHERE id = $1", me.user_id) == "en"


async def test_a_form_without_its_csrf_token_is_refused(app, pool):
    async with signed_in(app, pool, ["liaison_officer"], API_DEPARTMENT) as me:
        answer = await me.http.post("/language", data={"language": "en", "next": "/"}, headers={"Origin": BASE})
        assert answer.status_code == 403
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT language FROM users WHERE id = $1", me.user_id) == "zh"


async def test_sign_out_ends_the_session(app, pool):
    async with signed_in(app, pool, ["liaison_officer"], API_DEPARTMENT) as me:
        page = await me.get("/")
        answer = await me.submit(page, "/logout", {})
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
        again = await me.get("/")
        assert again.status_code == 303 and again.headers["location"].startswith("/login")
