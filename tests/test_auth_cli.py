"""`accord user set-password` as an administrator runs it: the real console script in a subprocess."""

from __future__ import annotations

import asyncpg

from tests.test_audit_cli import accord
from tests.test_auth_support import PASSWORD, browser, new_user, sign_in

NEW = "kingfisher at the Anchang river 88"


async def test_set_password_lets_the_user_sign_in_and_ends_their_sessions(app, pool: asyncpg.Pool, pg_url: str,
                                                                           tmp_path) -> None:
    user = await new_user(pool)
    async with browser(app) as http:
        before = await sign_in(http, user.username)
        run = await accord(tmp_path, "user", "set-password", user.username, "--database-url", pg_url,
                           key=None, ACCORD_NEW_PASSWORD=NEW)
        assert run.code == 0, run.err
        assert run.out.strip() == f"password of {user.username} set; 1 session(s) ended"
        assert (await http.get("/me", headers=before.headers(csrf=False))).status_code == 401
        assert (await http.post("/auth/login", json={"username": user.username, "password": PASSWORD})
                ).status_code == 401
        await sign_in(http, user.username, NEW)
    event = await pool.fetchrow(
        "SELECT * FROM audit_events WHERE action = 'auth.password_set' AND entity_id = $1", user.id)
    assert event is not None and event["auth_method"] == "cli" and NEW not in str(dict(event))


async def test_set_password_refuses_a_weak_one_and_an_unknown_user(pool: asyncpg.Pool, pg_url: str,
                                                                   tmp_path) -> None:
    user = await new_user(pool, password=None)
    run = await accord(tmp_path, "user", "set-password", user.username, "--database-url", pg_url,
                       key=None, ACCORD_NEW_PASSWORD="password1234")
    assert run.code == 1
    assert "is one of the most commonly used passwords" in run.err
    assert await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id) is None
    run = await accord(tmp_path, "user", "set-password", "nobody-at-all", "--database-url", pg_url,
                       key=None, ACCORD_NEW_PASSWORD=NEW)
    assert run.code == 1 and "no user 'nobody-at-all'" in run.err
