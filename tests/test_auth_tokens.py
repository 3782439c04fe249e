"""API tokens a user makes for automation: the secret once, read-only scope, revocation."""

from __future__ import annotations

import json

import asyncpg

from tests.conftest import new_id
from tests.test_api_support import key
from tests.test_auth_support import agent, browser, events, new_user, sign_in


def org() -> dict[str, str]:
    return {"name": f"Park committee {new_id()}", "kind": "park_committee"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_is_shown_once_and_listed_without_its_secret(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    ua = agent()
    async with browser(app, User_Agent=ua) as http:
        me = await sign_in(http, user.username)
        r = await http.post("/me/tokens", json={"name": "nightly export", "scope": "read_write"},
                            headers=me.headers())
        assert r.status_code == 201, r.text
        assert r.headers["cache-control"] == "no-store"
        created = r.json()
        secret = created["token"]
        assert secret.startswith("acc_") and len(secret) > 40
        assert (created["name"], created["scope"], created["revoked_at"]) == ("nightly export", "read_write", None)
        listed = await http.get("/me/tokens", headers=me.headers(csrf=False))
        assert listed.status_code == 200
        assert secret not in listed.text
        assert [t["id"] for t in listed.json()] == [created["id"]]
        assert set(listed.json()[0]) == {"id", "name", "scope", "created_at", "expires_at", "revoked_at"}

        who = await http.get("/me", headers=bearer(secret))
        assert who.status_code == 200 and (who.json()["user_id"], who.json()["auth_method"]) == (user.id, "api_token")
        # A token is not a session: it sees the user's sessions, and no CSRF token of any.
        state = (await http.get("/auth/session", headers=bearer(secret))).json()
        assert (state["auth_method"], state["current"], state["csrf_token"]) == ("api_token", None, None)
        assert len(state["others"]) == 1 and me.csrf_token not in json.dumps(state)
        # With a bearer token no CSRF token is needed: it may write (and make more tokens).
        assert (await http.post("/organizations", json=org(), headers=bearer(secret))).status_code == 201
        assert (await http.post("/me/tokens", json={"name": "child", "scope": "read"},
                                headers=bearer(secret))).status_code == 201
    found = await events(pool, ua)
    made = [e for e in found if e["action"] == "token.created"]
    assert len(made) == 2 and made[0]["entity_id"] == created["id"] and made[0]["after"]["scope"] == "read_write"
    assert secret not in json.dumps(found, default=str)


async def test_tokens_expire_after_the_days_asked(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    async with browser(app) as http:
        me = await sign_in(http, user.username)
        default = (await http.post("/me/tokens", json={"name": "default", "scope": "read"}, headers=me.headers())).json()
        week = (await http.post("/me/tokens", json={"name": "week", "scope": "read", "expires_in_days": 7},
                                headers=me.headers())).json()
    row = await pool.fetchrow("SELECT expires_at - created_at AS lifetime FROM api_tokens WHERE id = $1", default["id"])
    assert abs(row["lifetime"].total_seconds() - 90 * 86400) < 60
    row = await pool.fetchrow("SELECT expires_at - created_at AS lifetime FROM api_tokens WHERE id = $1", week["id"])
    assert abs(row["lifetime"].total_seconds() - 7 * 86400) < 60


async def test_token_requests_are_checked(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    async with browser(app) as http:
        me = await sign_in(http, user.username)
        for body, field in [
            ({"name": "x", "scope": "read", "expires_in_days": 0}, "expires_in_days"),
            ({"name": "x", "scope": "read", "expires_in_days": 366}, "expires_in_days"),
            ({"name": "x", "scope": "admin"}, "scope"),
            ({"name": "x"}, "scope"),
            ({"name": "", "scope": "read"}, "name"),
            ({"name": "x", "scope": "read", "secret": "mine"}, "secret"),
        ]:
            r = await http.post("/me/tokens", json=body, headers=me.headers())
            assert r.status_code == 422, f"{body}: {r.text}"
            assert [e["loc"] for e in r.json()["detail"]] == [["body", field]], f"{body}: {r.text}"


async def test_a_read_token_reads_and_changes_nothing(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    async with browser(app) as http:
        me = await sign_in(http, user.username)
        read = (await http.post("/me/tokens", json={"name": "dashboard", "scope": "read"},
                                headers=me.headers())).json()
        assert read["scope"] == "read"
        token = read["token"]
        assert (await http.get("/organizations", headers=bearer(token))).status_code == 200
        r = await http.post("/organizations", json=org(), headers=bearer(token))
        assert r.status_code == 403 and r.json() == {"detail": "this API token is read-only"}
        # Nor may it make a token (which would be a way out of its scope) or revoke one.
        assert (await http.post("/me/tokens", json={"name": "escalate", "scope": "read_write"},
                                headers=bearer(token))).status_code == 403
        assert (await http.delete(f"/me/tokens/{read['id']}", headers=bearer(token))).status_code == 403
        # A refused write with an Idempotency-Key does not use the key up for the user.
        k = key()
        assert (await http.post("/organizations", json=org(), headers={**bearer(token), "Idempotency-Key": k})
                ).status_code == 403
        assert (await http.post("/organizations", json=org(), headers={**me.headers(), "Idempotency-Key": k})
                ).status_code == 201


async def test_revoking_a_token_stops_it_at_once(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    stranger = await new_user(pool)
    ua = agent()
    async with browser(app, User_Agent=ua) as http:
        me = await sign_in(http, user.username)
        them = await sign_in(http, stranger.username)
        made = (await http.post("/me/tokens", json={"name": "ci", "scope": "read_write"}, headers=me.headers())).json()
        theirs = (await http.post("/me/tokens", json={"name": "theirs", "scope": "read"},
                                  headers=them.headers())).json()
        assert (await http.get("/me", headers=bearer(made["token"]))).status_code == 200

        assert (await http.delete(f"/me/tokens/{theirs['id']}", headers=me.headers())).status_code == 404
        assert (await http.delete("/me/tokens/no-such-token", headers=me.headers())).status_code == 404
        assert (await http.get("/me", headers=bearer(theirs["token"]))).status_code == 200

        r = await http.delete(f"/me/tokens/{made['id']}", headers=me.headers())
        assert r.status_code == 200, r.text
        assert r.json()["revoked_at"] is not None and "token" not in r.json()
        assert (await http.get("/me", headers=bearer(made["token"]))).status_code == 401
        again = await http.delete(f"/me/tokens/{made['id']}", headers=me.headers())
        assert again.status_code == 200 and again.json() == r.json()
        assert (await http.get("/me/tokens", headers=me.headers(csrf=False))).json() == []
    actions = [e["action"] for e in await events(pool, ua)]
    assert actions.count("token.revoked") == 1


async def test_a_retried_token_creation_does_not_replay_the_secret(app, pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    async with browser(app) as http:
        me = await sign_in(http, user.username)
        k = key()
        body = {"name": "retried", "scope": "read"}
        first = await http.post("/me/tokens", json=body, headers={**me.headers(), "Idempotency-Key": k})
        assert first.status_code == 201
        again = await http.post("/me/tokens", json=body, headers={**me.headers(), "Idempotency-Key": k})
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert first.json()["token"] not in again.text and "shown only once" in again.json()["detail"]
        assert len((await http.get("/me/tokens", headers=me.headers(csrf=False))).json()) == 1
    stored = await pool.fetch("SELECT response_body FROM idempotency_keys WHERE user_id = $1", user.id)
    assert stored and all(first.json()["token"].encode() not in bytes(r["response_body"]) for r in stored)
