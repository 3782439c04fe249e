"""Signing in with a password: the cookie, the one answer for every failure, throttling and
lockout, the password policy, password changes, rehashing, and what the audit trail keeps."""

from __future__ import annotations

import asyncio
import hashlib
import json

import asyncpg
import pytest
from argon2 import PasswordHasher

from api.auth import AuthConfig
from db.passwords import PasswordRejected, set_password
from domain.passwords import MAX_LENGTH, MIN_LENGTH, common_passwords, problems
from tests.conftest import new_id
from tests.test_auth_support import (
    PASSWORD,
    FakeClock,
    agent,
    auth_app,
    browser,
    cookie_attributes,
    events,
    header_names,
    new_address,
    new_user,
    set_cookie_header,
    sign_in,
)

NEW_PASSWORD = "quiet larch above Xianhai lake 42"


async def attempt(http, username: str, password: str, **headers: str):
    return await http.post("/auth/login", json={"username": username, "password": password},
                           headers=header_names(headers))


# ---------------------------------------------------------------- the session cookie


async def test_sign_in_sets_a_session_cookie_with_safe_flags(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    async with browser(app) as http:
        r = await attempt(http, user.username, PASSWORD)
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        value, attributes = cookie_attributes(set_cookie_header(r))
        assert "HttpOnly" in attributes
        assert attributes["SameSite"] == "Lax"
        assert attributes["Path"] == "/"
        assert "Secure" not in attributes  # plain HTTP: a Secure cookie would never come back
        # X-Forwarded-Proto counts only from a proxy uvicorn trusts (it then rewrites the scheme itself).
        forwarded = await attempt(http, user.username, PASSWORD, X_Forwarded_Proto="https")
        assert "Secure" not in cookie_attributes(set_cookie_header(forwarded))[1]
        assert 0 < int(attributes["Max-Age"]) <= 12 * 3600
        body = r.json()
        assert body["user"] == {"id": user.id, "username": user.username, "display_name": "Officer Zhao",
                                "roles": ["liaison_officer"], "department": None}
        assert len(body["csrf_token"]) >= 40 and body["csrf_token"] != value
        assert body["expires_at"]

        me = await http.get("/me", headers={"Cookie": f"accord_session={value}"})
        assert me.status_code == 200, me.text
        assert (me.json()["user_id"], me.json()["auth_method"]) == (user.id, "session")

    # The database holds the id's SHA-256, never the id.
    stored = [dict(r) for r in await pool.fetch("SELECT * FROM sessions WHERE user_id = $1", user.id)]
    assert hashlib.sha256(value.encode()).digest() in [bytes(r["id_hash"]) for r in stored]
    assert value not in str(stored)
    assert len(value) >= 43  # 256 random bits, url-safe


async def test_the_cookie_is_secure_over_https(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    async with browser(app, base_url="https://accord.test") as http:
        r = await attempt(http, user.username, PASSWORD)
        assert r.status_code == 200, r.text
        _, attributes = cookie_attributes(set_cookie_header(r))
        assert "Secure" in attributes and "HttpOnly" in attributes and attributes["SameSite"] == "Lax"


async def test_cookie_secure_setting_marks_it_secure_behind_an_untrusted_proxy(client, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    async with browser(auth_app(client, pool, auth=AuthConfig(cookie_secure=True))) as http:
        r = await attempt(http, user.username, PASSWORD, X_Forwarded_Proto="https")
        assert r.status_code == 200, r.text
        assert "Secure" in cookie_attributes(set_cookie_header(r))[1]


# ---------------------------------------------------------------- failures look alike


async def test_every_failure_answers_the_same(app, pool: asyncpg.Pool) -> None:
    known = await new_user(pool)
    disabled = await new_user(pool)
    await pool.execute("UPDATE users SET disabled_at = now() WHERE id = $1", disabled.id)
    passwordless = await new_user(pool, password=None)
    answers = {}
    async with browser(app) as http:
        answers["unknown user"] = await attempt(http, new_id("nobody-"), PASSWORD)
        answers["wrong password"] = await attempt(http, known.username, PASSWORD + "!")
        answers["disabled user, right password"] = await attempt(http, disabled.username, PASSWORD)
        answers["no password set"] = await attempt(http, passwordless.username, PASSWORD)
        answers["username in another case"] = await attempt(http, known.username.upper(), PASSWORD)
    bodies = {name: (r.status_code, r.content) for name, r in answers.items()}
    assert len(set(bodies.values())) == 1, bodies
    assert bodies["unknown user"][0] == 401
    assert json.loads(bodies["unknown user"][1]) == {"detail": "sign-in failed: wrong username or password"}
    for name, r in answers.items():
        assert set_cookie_header(r) is None, name
    assert await pool.fetchval("SELECT count(*) FROM sessions WHERE user_id = ANY($1)",
                               [known.id, disabled.id, passwordless.id]) == 0


# ---------------------------------------------------------------- throttling and lockout


async def test_failures_slow_down_an_account_more_and_more(client, pool: asyncpg.Pool) -> None:
    clock = FakeClock()
    username = new_id("nobody-")  # an unknown name is throttled exactly like a real one
    async with browser(auth_app(client, pool, clock)) as http:
        for _ in range(5):
            assert (await attempt(http, username, PASSWORD)).status_code == 401
        waits = []
        for _ in range(3):
            r = await attempt(http, username, PASSWORD)
            assert r.status_code == 429, r.text
            assert r.json() == {"detail": "too many failed sign-ins; wait before trying again (see Retry-After)"}
            waits.append(int(r.headers["retry-after"]))
            clock.advance(seconds=waits[-1])
            assert (await attempt(http, username, PASSWORD)).status_code == 401
        assert waits == [2, 4, 8]


async def test_a_burst_of_parallel_guesses_is_counted_before_it_is_checked(client, pool: asyncpg.Pool) -> None:
    clock = FakeClock()
    user = await new_user(pool)
    async with browser(auth_app(client, pool, clock)) as http:
        answers = await asyncio.gather(*(attempt(http, user.username, f"guess number {i}") for i in range(12)))
    assert sorted(r.status_code for r in answers) == [401] * 5 + [429] * 7


async def test_lockout_refuses_even_the_right_password_until_it_ends(client, pool: asyncpg.Pool) -> None:
    clock = FakeClock()
    user = await new_user(pool)
    ua = agent()
    async with browser(auth_app(client, pool, clock), User_Agent=ua) as http:
        for _ in range(10):
            assert (await attempt(http, user.username, "not the password at all")).status_code == 401
            clock.advance(minutes=1)
        locked = await attempt(http, user.username, PASSWORD)
        assert locked.status_code == 429
        assert 14 * 60 <= int(locked.headers["retry-after"]) <= 15 * 60
        clock.advance(minutes=5)
        wrong = await attempt(http, user.username, "still not it")
        assert (wrong.status_code, wrong.content) == (429, locked.content)  # right or wrong: the same answer
        clock.advance(minutes=10)
        assert (await attempt(http, user.username, PASSWORD)).status_code == 200
        # The success forgave the failures: the next mistake is an ordinary 401.
        assert (await attempt(http, user.username, "one more typo")).status_code == 401
    actions = [e["action"] for e in await events(pool, ua)]
    assert actions.count("auth.locked_out") == 1
    assert actions.count("auth.login_refused") == 2
    assert actions.count("auth.login") == 1


async def test_one_address_is_refused_after_many_failures(client, pool: asyncpg.Pool) -> None:
    clock = FakeClock()
    app = auth_app(client, pool, clock, auth=AuthConfig(login_source_limit=4))
    user = await new_user(pool)
    address = new_address()
    async with browser(app, address=address) as http:
        for _ in range(2):
            assert (await attempt(http, user.username, "a wrong guess")).status_code == 401
        assert (await attempt(http, new_id("guess-"), PASSWORD)).status_code == 401
        # The success forgives the account, but not the address: its failures still count.
        await sign_in(http, user.username)
        assert (await attempt(http, new_id("guess-"), PASSWORD)).status_code == 401
        refused = await attempt(http, user.username, PASSWORD)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) == 15 * 60
    async with browser(app) as elsewhere:
        await sign_in(elsewhere, user.username)
    clock.advance(minutes=15)
    async with browser(app, address=address) as http:
        await sign_in(http, user.username)


# ---------------------------------------------------------------- hashes


async def test_a_hash_with_old_parameters_is_replaced_at_sign_in(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool, password=None)
    weak = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1).hash(PASSWORD)
    await pool.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user.id, weak)
    async with browser(app) as http:
        await sign_in(http, user.username)
        stored = await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id)
        assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$") and stored != weak
        await sign_in(http, user.username)


async def test_set_password_refuses_what_the_policy_refuses(pool: asyncpg.Pool) -> None:
    user = await new_user(pool, password=None)
    async with pool.acquire() as conn:
        with pytest.raises(PasswordRejected) as refused:
            await set_password(conn, user.id, "short")
    assert refused.value.reasons == ["must be at least 12 characters long (this one has 5)"]
    assert await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id) is None


# ---------------------------------------------------------------- the password policy


def test_policy_accepts_a_long_uncommon_password() -> None:
    assert problems(PASSWORD, "li.wei") == []
    assert problems("x" * 11 + "y", None) == []


def test_policy_reasons() -> None:
    assert problems("Fujiang1917", "li.wei") == [f"must be at least {MIN_LENGTH} characters long (this one has 11)"]
    assert problems("ab" * 65) == [f"must be at most {MAX_LENGTH} characters long (this one has 130)"]
    assert problems("QWERTYUIOP123") == ["is one of the most commonly used passwords; choose another"]
    assert problems("Password1234") == ["is one of the most commonly used passwords; choose another"]
    assert problems("aaaaaaaaaaaaaaaa") == ["must not be one character repeated"]
    assert problems("my name is LI.WEI, ok?", "li.wei") == ["must not contain the username"]
    assert problems("a short li", "li") == ["must be at least 12 characters long (this one has 10)"]
    assert problems("woaini1314", "wo") == [
        "must be at least 12 characters long (this one has 10)",
        "is one of the most commonly used passwords; choose another",
    ]


def test_policy_normalises_unicode() -> None:
    # Full-width digits and letters are the same password as their ASCII forms (NFKC).
    assert problems("ｐａｓｓｗｏｒｄ１２３４") == ["is one of the most commonly used passwords; choose another"]


def test_the_deny_list_is_long_and_lower_case() -> None:
    words = common_passwords()
    assert len(words) >= 300
    assert all(w == w.casefold() and w.strip() == w and w for w in words)
    assert sum(len(w) >= MIN_LENGTH for w in words) >= 100  # the ones the length rule alone would let through


# ---------------------------------------------------------------- changing one's password


async def test_password_change_checks_the_policy_field_by_field(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    async with browser(app) as http:
        me = await sign_in(http, user.username)

        async def change(new: str, current: str = PASSWORD):
            return await http.put("/me/password", json={"current_password": current, "new_password": new},
                                  headers=me.headers())

        for new, message in [
            ("too short", "must be at least 12 characters long (this one has 9)"),
            ("iloveyou1234", "is one of the most commonly used passwords; choose another"),
            (f"mine: {user.username}!", "must not contain the username"),
            (PASSWORD, "must differ from the current password"),
        ]:
            r = await change(new)
            assert r.status_code == 422, r.text
            assert r.json()["detail"] == [{"loc": ["body", "new_password"], "msg": message, "type": "value_error"}]
        r = await change("x" * 200)
        assert r.status_code == 422 and r.json()["detail"][0]["msg"].startswith("must be at most 128")
        wrong = await change(NEW_PASSWORD, current="not my password")
        assert wrong.status_code == 403 and wrong.json() == {"detail": "the current password is wrong"}
    assert await pool.fetchval("SELECT password_changed_at FROM users WHERE id = $1", user.id) is not None


async def test_password_change_ends_every_other_session(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    ua = agent()
    async with browser(app, User_Agent=ua) as http:
        here = await sign_in(http, user.username)
        there = await sign_in(http, user.username)
        r = await http.put("/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
                           headers=here.headers())
        assert r.status_code == 200, r.text
        assert r.json()["other_sessions_revoked"] == 1
        assert (await http.get("/me", headers=there.headers(csrf=False))).status_code == 401
        assert (await http.get("/me", headers=here.headers(csrf=False))).status_code == 200
        assert (await attempt(http, user.username, PASSWORD)).status_code == 401
        await sign_in(http, user.username, NEW_PASSWORD)
    changed = [e for e in await events(pool, ua) if e["action"] == "auth.password_changed"]
    assert len(changed) == 1 and changed[0]["actor_id"] == user.id and changed[0]["auth_method"] == "session"
    assert changed[0]["after"] == {"other_sessions_revoked": 1}


# ---------------------------------------------------------------- the audit trail


async def test_sign_ins_are_audited_without_secrets(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    ua = agent()
    wrong = "Wrong-but-close-" + PASSWORD
    async with browser(app, User_Agent=ua) as http:
        assert (await attempt(http, user.username, wrong)).status_code == 401
        tried = new_id("nobody-")
        assert (await attempt(http, tried, wrong)).status_code == 401
        me = await sign_in(http, user.username)
    found = await events(pool, ua)
    failed = [e for e in found if e["action"] == "auth.login_failed"]
    assert [(e["actor_id"], e["actor_name"], e["auth_method"], e["outcome"], e["after"]["reason"])
            for e in failed] == [
        ("anonymous", user.username, "password", "refused", "wrong_password"),
        ("anonymous", tried, "password", "refused", "unknown_user"),
    ]
    assert failed[0]["entity_id"] == user.id and failed[0]["source_ip"].startswith("2001:db8::")
    succeeded = [e for e in found if e["action"] == "auth.login"]
    assert len(succeeded) == 1
    assert (succeeded[0]["actor_id"], succeeded[0]["actor_name"], succeeded[0]["auth_method"]) == (
        user.id, "Officer Zhao", "password")
    assert succeeded[0]["after"]["session"] == hashlib.sha256(me.session_id.encode()).hexdigest()[:12]
    stored_hash = await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id)
    text = json.dumps([{k: v for k, v in e.items() if k not in ("hash", "prev_hash")} for e in found], default=str)
    for secret in (PASSWORD, wrong, me.session_id, me.csrf_token, stored_hash,
                   hashlib.sha256(me.session_id.encode()).hexdigest()):
        assert secret not in text
