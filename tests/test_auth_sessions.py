"""Sessions: a new id at every sign-in, sign-out, sign-out everywhere, idle and absolute expiry
on an injected clock, the session listing, CSRF defence of cookie writes, and idempotency keys."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import asyncpg

from api.auth import AuthConfig
from db.users import issue_token
from tests.conftest import new_id
from tests.test_api_support import key
from tests.test_auth_support import (
    PASSWORD,
    FakeClock,
    agent,
    auth_app,
    browser,
    cookie_attributes,
    events,
    new_user,
    set_cookie_header,
    sign_in,
)


def org(name: str | None = None) -> dict[str, str]:
    return {"name": name or f"Park committee {new_id()}", "kind": "park_committee"}


async def status_of_me(http, signed_in) -> int:
    return (await http.get("/me", headers=signed_in.headers(csrf=False))).status_code


# ---------------------------------------------------------------- fixation, sign-out


async def test_every_sign_in_makes_a_new_session_and_ends_the_one_sent(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    async with browser(app) as http:
        first = await sign_in(http, user.username)
        second = await sign_in(http, user.username, Cookie=f"accord_session={first.session_id}")
        assert second.session_id != first.session_id and second.csrf_token != first.csrf_token
        assert await status_of_me(http, first) == 401
        assert await status_of_me(http, second) == 200
        # A value planted in the browser by someone else is never adopted.
        planted = "planted-by-an-attacker-0123456789abcdefghijklmn"
        third = await sign_in(http, user.username, Cookie=f"accord_session={planted}")
        assert third.session_id != planted
        assert (await http.get("/me", headers={"Cookie": f"accord_session={planted}"})).status_code == 401


async def test_sign_out_ends_the_session_and_clears_the_cookie(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    ua = agent()
    async with browser(app, User_Agent=ua) as http:
        me = await sign_in(http, user.username)
        r = await http.post("/auth/logout", headers=me.headers())
        assert r.status_code == 200, r.text
        assert r.json() == {"revoked": 1}
        cleared = set_cookie_header(r)
        assert cleared is not None and "Max-Age=0" in cleared and cleared.startswith('accord_session=""')
        # Replaying the old cookie: nothing works any more.
        assert await status_of_me(http, me) == 401
        assert (await http.post("/auth/logout", headers=me.headers())).status_code == 401
        assert (await http.post("/organizations", json=org(), headers=me.headers())).status_code == 401
    actions = [e["action"] for e in await events(pool, ua)]
    assert actions.count("auth.logout") == 1


async def test_sign_out_everywhere_from_one_session_ends_the_others(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    bystander = await new_user(pool)
    async with browser(app) as laptop, browser(app) as phone:
        a = await sign_in(laptop, user.username)
        b = await sign_in(phone, user.username)
        other = await sign_in(phone, bystander.username)
        r = await phone.post("/auth/logout-all", headers=b.headers())
        assert r.status_code == 200, r.text
        assert r.json() == {"revoked": 2}
        assert set_cookie_header(r) is not None
        assert await status_of_me(laptop, a) == 401
        assert await status_of_me(phone, b) == 401
        assert await status_of_me(phone, other) == 200


async def test_a_token_may_end_sessions_but_is_not_one(app, api, pool: asyncpg.Pool) -> None:
    async with browser(app) as http:
        user = await new_user(pool)
        session = await sign_in(http, user.username)
        async with pool.acquire() as conn:
            token = await issue_token(conn, user.id, "tests")
        bearer = {"Authorization": f"Bearer {token}"}
        r = await http.post("/auth/logout", headers=bearer)
        assert r.status_code == 400 and "not a session" in r.json()["detail"]
        r = await http.post("/auth/logout-all", headers=bearer)
        assert r.status_code == 200 and r.json() == {"revoked": 1}
        assert set_cookie_header(r) is None
        assert await status_of_me(http, session) == 401
        assert (await http.get("/me", headers=bearer)).status_code == 200


# ---------------------------------------------------------------- expiry, on the injected clock


async def test_a_session_ends_after_thirty_idle_minutes(client, pool: asyncpg.Pool) -> None:
    clock = FakeClock()
    user = await new_user(pool)
    async with browser(auth_app(client, pool, clock)) as http:
        me = await sign_in(http, user.username)
        id_hash = hashlib.sha256(me.session_id.encode()).digest()

        async def last_seen():
            return await pool.fetchval("SELECT last_seen_at FROM sessions WHERE id_hash = $1", id_hash)

        signed_in_at = await last_seen()
        clock.advance(seconds=30)
        assert await status_of_me(http, me) == 200
        assert await last_seen() == signed_in_at  # written at most once a minute
        clock.advance(minutes=29)
        assert await status_of_me(http, me) == 200  # 29.5 minutes idle: still on, and seen now
        assert await last_seen() == clock.now
        clock.advance(minutes=29, seconds=59)
        assert await status_of_me(http, me) == 200
        clock.advance(minutes=30)
        assert await status_of_me(http, me) == 401
        clock.advance(hours=1)
        assert await status_of_me(http, me) == 401


async def test_a_busy_session_still_ends_twelve_hours_after_sign_in(client, pool: asyncpg.Pool) -> None:
    clock = FakeClock()
    user = await new_user(pool)
    async with browser(auth_app(client, pool, clock)) as http:
        me = await sign_in(http, user.username)
        for _ in range(12 * 3 - 1):
            clock.advance(minutes=20)
            assert await status_of_me(http, me) == 200
        clock.advance(minutes=19, seconds=59)
        assert await status_of_me(http, me) == 200
        clock.advance(seconds=1)
        assert await status_of_me(http, me) == 401
        assert (await http.post("/auth/logout", headers=me.headers())).status_code == 401


async def test_the_idle_and_absolute_limits_are_settings(client, pool: asyncpg.Pool) -> None:
    clock = FakeClock()
    user = await new_user(pool)
    app = auth_app(client, pool, clock, auth=AuthConfig(session_idle=timedelta(minutes=5),
                                                       session_absolute=timedelta(hours=1)))
    async with browser(app) as http:
        me = await sign_in(http, user.username)
        assert 0 < int(cookie_attributes(set_cookie_header(
            await http.post("/auth/login", json={"username": user.username, "password": PASSWORD})))[1]["Max-Age"]) \
            <= 3600
        clock.advance(minutes=4)
        assert await status_of_me(http, me) == 200
        clock.advance(minutes=5)
        assert await status_of_me(http, me) == 401


# ---------------------------------------------------------------- the session listing


async def test_the_session_describes_itself_and_lists_the_others(client, pool: asyncpg.Pool) -> None:
    clock = FakeClock()
    user = await new_user(pool)
    app = auth_app(client, pool, clock)
    async with browser(app, User_Agent="laptop") as laptop, browser(app, User_Agent="phone") as phone:
        a = await sign_in(laptop, user.username)
        clock.advance(minutes=1)
        b = await sign_in(phone, user.username)
        gone = await sign_in(phone, user.username)
        await phone.post("/auth/logout", headers=gone.headers())
        clock.advance(minutes=2)
        r = await laptop.get("/auth/session", headers=a.headers(csrf=False))
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        state = r.json()
        assert state["auth_method"] == "session" and state["user"]["id"] == user.id
        assert state["csrf_token"] == a.csrf_token
        current = state["current"]
        assert current["id"] == hashlib.sha256(a.session_id.encode()).hexdigest()[:12]
        assert current["user_agent"] == "laptop"
        assert current["last_seen_at"] != current["created_at"]  # this request counted as activity
        assert [o["id"] for o in state["others"]] == [hashlib.sha256(b.session_id.encode()).hexdigest()[:12]]
        assert state["others"][0]["user_agent"] == "phone"
        for view in [current, *state["others"]]:
            assert set(view) == {"id", "created_at", "last_seen_at", "expires_at", "idle_expires_at", "source_ip",
                                 "user_agent"}
            assert view["id"] not in (a.session_id, b.session_id) and len(view["id"]) == 12
        for secret in (a.session_id, b.session_id, b.csrf_token, gone.session_id):
            assert secret not in r.text


# ---------------------------------------------------------------- CSRF


async def test_cookie_writes_need_the_csrf_token_and_our_origin(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    other = await new_user(pool)
    async with browser(app) as http:
        me = await sign_in(http, user.username)
        theirs = await sign_in(http, other.username)
        refusals = {
            "no token": me.headers(csrf=False),
            "another session's token": {**me.headers(), "X-CSRF-Token": theirs.csrf_token},
            "empty token": {**me.headers(), "X-CSRF-Token": ""},
            "foreign Origin": me.headers(Origin="https://evil.example"),
            "Origin on another port": me.headers(Origin="http://accord.test:8080"),
            "Origin null": me.headers(Origin="null"),
            "cross-site fetch": me.headers(Sec_Fetch_Site="cross-site"),
            "same-site fetch": me.headers(Sec_Fetch_Site="same-site"),
        }
        for case, headers in refusals.items():
            r = await http.post("/organizations", json=org(), headers=headers)
            assert r.status_code == 403, f"{case}: {r.status_code} {r.text}"
        assert "X-CSRF-Token" in (await http.post("/organizations", json=org(), headers=refusals["no token"])
                                  ).json()["detail"]
        assert "evil.example" in (await http.post("/organizations", json=org(), headers=refusals["foreign Origin"])
                                  ).json()["detail"]
        # What our own page sends works; so do reads without any token.
        name = f"Park committee {new_id()}"
        r = await http.post("/organizations", json=org(name),
                            headers=me.headers(Origin="http://accord.test", Sec_Fetch_Site="same-origin"))
        assert r.status_code == 201, r.text
        assert r.json()["created_by"] == "Officer Zhao"
        assert (await http.post("/organizations", json=org(), headers=me.headers(Sec_Fetch_Site="none"))
                ).status_code == 201
        assert (await http.get("/organizations", headers=me.headers(csrf=False, Sec_Fetch_Site="cross-site"))
                ).status_code == 200
    assert await pool.fetchval("SELECT count(*) FROM organizations WHERE created_by = 'Officer Zhao' AND name = $1",
                               name) == 1


async def test_the_public_url_is_our_origin_too(client, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    app = auth_app(client, pool, public_url="https://accord.mianyang.gov.cn")
    async with browser(app, base_url="http://10.0.0.7:8000") as http:
        me = await sign_in(http, user.username)
        r = await http.post("/organizations", json=org(), headers=me.headers(Origin="https://accord.mianyang.gov.cn"))
        assert r.status_code == 201, r.text
        r = await http.post("/organizations", json=org(), headers=me.headers(Origin="http://accord.mianyang.gov.cn"))
        assert r.status_code == 403, r.text


async def test_a_foreign_page_cannot_sign_a_browser_in(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    async with browser(app) as http:
        r = await http.post("/auth/login", json={"username": user.username, "password": PASSWORD},
                            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403 and set_cookie_header(r) is None


async def test_bearer_requests_need_no_csrf_token(api) -> None:
    r = await api.http.post("/organizations", json=org())
    assert r.status_code == 201, r.text
    # Browsers never attach a bearer token on their own, so a foreign page cannot forge one.
    r = await api.http.post("/organizations", json=org(), headers={"Origin": "https://evil.example"})
    assert r.status_code == 201, r.text


async def test_a_refused_write_is_audited_under_the_session_user(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    ua = agent()
    async with browser(app, User_Agent=ua) as http:
        me = await sign_in(http, user.username)
        assert (await http.post("/organizations", json=org(), headers=me.headers(csrf=False))).status_code == 403
    refused = [e for e in await events(pool, ua) if e["action"].startswith("api:POST ")]
    assert [e["action"] for e in refused] == ["api:POST /organizations"]
    assert [(e["actor_id"], e["auth_method"], e["outcome"]) for e in refused] == [(user.id, "session", "refused")]
    assert me.csrf_token not in refused[0]["error"]


# ---------------------------------------------------------------- idempotency keys


async def test_idempotency_keys_work_for_sessions_and_belong_to_their_user(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    other = await new_user(pool)
    async with browser(app) as http:
        me = await sign_in(http, user.username)
        theirs = await sign_in(http, other.username)
        k, body = key(), org()
        # Refused for want of the CSRF token: the key is not used up.
        assert (await http.post("/organizations", json=body, headers={**me.headers(csrf=False),
                                                                         "Idempotency-Key": k})).status_code == 403
        first = await http.post("/organizations", json=body, headers={**me.headers(), "Idempotency-Key": k})
        assert first.status_code == 201 and "idempotent-replayed" not in first.headers
        again = await http.post("/organizations", json=body, headers={**me.headers(), "Idempotency-Key": k})
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        # The same key from another user is theirs: a new request (here a 409, the name is taken).
        mine_too = await http.post("/organizations", json=body, headers={**theirs.headers(), "Idempotency-Key": k})
        assert mine_too.status_code == 409 and "idempotent-replayed" not in mine_too.headers
    assert await pool.fetchval("SELECT count(*) FROM organizations WHERE name = $1", body["name"]) == 1
