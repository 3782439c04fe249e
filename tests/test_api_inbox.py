"""The inbox and notification settings through the HTTP API.

Inbox rows are written by the reminder delivery activity; here they are inserted
with SQL, then read, paged and marked read over HTTP. Every test works with fresh
users, so what one user sees is exactly what was put in that user's inbox; a second
user proves that nobody can see or mark another's messages.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from db.inbox import encode_cursor
from db.users import create_user, issue_token
from tests.conftest import ApiUser, new_id
from tests.test_api_support import ok


@asynccontextmanager
async def user_client(app, pool: asyncpg.Pool, display_name: str | None = None,
                      username: str | None = None, roles: tuple[str, ...] = ("liaison_officer",),
                      department: str | None = None) -> AsyncIterator[ApiUser]:
    """A fresh user with a token and an HTTP client on the same app (by default a liaison officer
    of no department: their inbox and settings are theirs, whatever they may see)."""
    async with pool.acquire() as conn:
        user = await create_user(conn, username or new_id("user-"), display_name or f"Staff {new_id()}",
                                 roles, department)
        token = await issue_token(conn, user.id, "tests")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://accord.test/api/v1",
                                 headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        yield ApiUser(token=token, user_id=user.id, http=http)


async def add_message(pool: asyncpg.Pool, user_id: str, subject: str, created_at: datetime | None = None,
                      kind: str = "notice") -> str:
    """One inbox row as the delivery activity writes it."""
    message_id = f"delivery-{uuid.uuid4().hex}"
    await pool.execute(
        """
        INSERT INTO inbox_messages (id, user_id, kind, project_id, notice_key, subject, body, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, now()))
        """,
        message_id, user_id, kind, "project-1", f"project-1/m1/0/{subject}", subject, f"Body of {subject}",
        created_at,
    )
    return message_id


async def inbox(user: ApiUser, **params: object) -> dict:
    return ok(await user.http.get("/inbox", params=params))


def subjects(page: dict) -> list[str]:
    return [m["subject"] for m in page["items"]]


async def test_each_user_sees_only_own_messages_newest_first(app, pool: asyncpg.Pool) -> None:
    start = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
    async with user_client(app, pool) as alice, user_client(app, pool) as bob:
        for i, subject in enumerate(["first", "second", "third"]):
            await add_message(pool, alice.user_id, subject, start + timedelta(hours=i))
        await add_message(pool, bob.user_id, "for bob", start, kind="delivery_failed")

        page = await inbox(alice)
        assert subjects(page) == ["third", "second", "first"]
        assert page["unread_count"] == 3
        assert page["next_before"] is None
        message = page["items"][0]
        assert set(message) == {"id", "kind", "project_id", "notice_key", "subject", "body", "created_at", "read_at"}
        assert (message["kind"], message["body"], message["read_at"]) == ("notice", "Body of third", None)

        page = await inbox(bob)
        assert subjects(page) == ["for bob"]
        assert page["items"][0]["kind"] == "delivery_failed"
        assert page["unread_count"] == 1


async def test_nobody_can_mark_another_users_message(app, pool: asyncpg.Pool) -> None:
    async with user_client(app, pool) as alice, user_client(app, pool) as bob:
        alices = await add_message(pool, alice.user_id, "private")
        answer = await bob.http.post(f"/inbox/{alices}/read")
        nobodys = f"delivery-{uuid.uuid4().hex}"
        unknown = await bob.http.post(f"/inbox/{nobodys}/read")
        assert answer.status_code == 404
        assert unknown.status_code == 404
        assert answer.text.replace(alices, "ID") == unknown.text.replace(nobodys, "ID")
        assert "private" not in answer.text
        assert (await inbox(alice))["unread_count"] == 1
        assert (await inbox(bob))["items"] == []


async def test_marking_read_is_idempotent_and_counts_unread(app, pool: asyncpg.Pool) -> None:
    async with user_client(app, pool) as user:
        first = await add_message(pool, user.user_id, "one")
        await add_message(pool, user.user_id, "two")

        read = ok(await user.http.post(f"/inbox/{first}/read"))
        assert read["id"] == first and read["read_at"] is not None
        again = ok(await user.http.post(f"/inbox/{first}/read"))
        assert again["read_at"] == read["read_at"]

        page = await inbox(user)
        assert page["unread_count"] == 1
        assert len(page["items"]) == 2
        unread = await inbox(user, unread="true")
        assert subjects(unread) == ["two"]
        assert unread["unread_count"] == 1


async def test_read_all_marks_only_the_callers_messages(app, pool: asyncpg.Pool) -> None:
    async with user_client(app, pool) as alice, user_client(app, pool) as bob:
        for subject in ("a", "b", "c"):
            await add_message(pool, alice.user_id, subject)
        await add_message(pool, bob.user_id, "bob's")
        first = (await inbox(alice))["items"][0]
        ok(await alice.http.post(f"/inbox/{first['id']}/read"))

        assert ok(await alice.http.post("/inbox/read-all")) == {"marked": 2, "unread_count": 0}
        assert ok(await alice.http.post("/inbox/read-all")) == {"marked": 0, "unread_count": 0}
        assert (await inbox(alice, unread="true"))["items"] == []
        assert (await inbox(bob))["unread_count"] == 1


async def test_pages_follow_the_cursor_without_skipping_equal_times(app, pool: asyncpg.Pool) -> None:
    same = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
    async with user_client(app, pool) as user:
        ids = {await add_message(pool, user.user_id, f"tie {i}", same) for i in range(3)}
        older = await add_message(pool, user.user_id, "older", same - timedelta(days=1))
        ids.add(older)
        seen: list[str] = []
        page = await inbox(user, limit=2)
        while True:
            seen += [m["id"] for m in page["items"]]
            if page["next_before"] is None:
                break
            page = await inbox(user, limit=2, before=page["next_before"])
        assert len(seen) == 4
        assert set(seen) == ids
        assert seen[-1] == older


@pytest.mark.parametrize("params", [
    {"before": "not-a-cursor"},
    {"before": "W10"},  # base64 of [] : valid JSON, not a cursor
    {"before": encode_cursor(datetime(2026, 1, 1, tzinfo=UTC), "x\x00")},
    {"before": base64.urlsafe_b64encode(b'["2026-01-01T00:00:00", "x"]').decode()},  # no time zone
    {"before": base64.urlsafe_b64encode(b'["0001-01-01T00:00:00+00:00", "x"]').decode()},
    {"before": base64.urlsafe_b64encode(b'["2026-01-01T00:00:00+00:00", 5]').decode()},
    {"before": base64.urlsafe_b64encode(b"\xff\xfe").decode()},
    {"limit": 0},
    {"limit": 201},
    {"unread": "maybe"},
])
async def test_bad_inbox_queries_are_422(api, params: dict) -> None:
    answer = await api.http.get("/inbox", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][0] == "query"


async def test_notification_settings_round_trip_and_are_audited(app, pool: asyncpg.Pool) -> None:
    async with user_client(app, pool) as user:
        assert ok(await user.http.get("/me/notifications")) == {"email": None, "language": "zh"}

        saved = ok(await user.http.put("/me/notifications", json={"email": " Li.Wei@MianYang.gov.cn ",
                                                                   "language": "en"}))
        assert saved == {"email": "Li.Wei@mianyang.gov.cn", "language": "en"}
        assert ok(await user.http.get("/me/notifications")) == saved
        assert await pool.fetchval("SELECT email FROM users WHERE id = $1", user.user_id) == "Li.Wei@mianyang.gov.cn"

        chinese = ok(await user.http.put("/me/notifications", json={"email": "wang@例子.中国", "language": "zh"}))
        assert chinese["email"] == "wang@xn--fsqu00a.xn--fiqs8s"

        cleared = ok(await user.http.put("/me/notifications", json={"email": None, "language": "zh"}))
        assert cleared == {"email": None, "language": "zh"}
        ok(await user.http.put("/me/notifications", json={"language": "zh"}))  # no change: nothing to audit

        events = await pool.fetch(
            "SELECT before, after, actor_id FROM audit_events WHERE action = 'user.notifications_changed' "
            "AND entity_id = $1 ORDER BY seq", user.user_id)
        changes = [(e["before"], e["after"]) for e in events]
        assert changes == [
            ({"email": None, "language": "zh"}, {"email": "Li.Wei@mianyang.gov.cn", "language": "en"}),
            ({"email": "Li.Wei@mianyang.gov.cn", "language": "en"}, {"email": "wang@xn--fsqu00a.xn--fiqs8s",
                                                                     "language": "zh"}),
            ({"email": "wang@xn--fsqu00a.xn--fiqs8s", "language": "zh"}, {"email": None, "language": "zh"}),
        ]
        assert {e["actor_id"] for e in events} == {user.user_id}


@pytest.mark.parametrize("email", [
    "not an email",
    "no-at-sign.gov.cn",
    "@mianyang.gov.cn",
    "li@",
    "li@localhost",
    "li@mianyang..gov.cn",
    "Li Wei <li@mianyang.gov.cn>",
    "li@mianyang.gov.cn\r\nBcc: all@example.com",
    "a@b.c, d@e.f",
    "li@-bad-.gov.cn",
    "li@10.0.0.5",
    "x" * 65 + "@mianyang.gov.cn",
    "li@" + "a" * 250 + ".cn",
    "li\x00@mianyang.gov.cn",
    "",
])
async def test_bad_email_is_a_422_on_the_field(api, pool: asyncpg.Pool, email: str) -> None:
    before = await pool.fetchval("SELECT email FROM users WHERE id = $1", api.user_id)
    answer = await api.http.put("/me/notifications", json={"email": email, "language": "zh"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "email"]
    assert await pool.fetchval("SELECT email FROM users WHERE id = $1", api.user_id) == before


@pytest.mark.parametrize("body, field", [
    ({"email": None, "language": "fr"}, "language"),
    ({"email": None}, "language"),
    ({"email": 42, "language": "zh"}, "email"),
    ({"email": None, "language": "zh", "phone": "123"}, "phone"),
])
async def test_bad_notification_settings_are_422(api, body: dict, field: str) -> None:
    answer = await api.http.put("/me/notifications", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", field]
