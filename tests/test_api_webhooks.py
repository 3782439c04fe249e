"""Department webhooks through the HTTP API: who may manage them, the secret is shown once,
revocation, audit, and the SSRF guard when a URL is saved.

A department's webhooks are managed by an admin or by a leader over the department
(domain/access.py); most tests act as an admin (`admin`), and the rules themselves are
tested with liaison officers and leaders.

The test app runs with `allow_private_webhooks` False (the default), so URLs that
point at loopback, private or link-local addresses are refused; a second app over
the same services with the switch on shows that the switch is what refuses them.
Accepted URLs use public IP literals, so no test depends on DNS.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from urllib.parse import quote

import asyncpg
import httpx
import pytest
import pytest_asyncio

from api.app import create_app
from db.departments import create_department
from tests.conftest import API_DEPARTMENT, ApiUser, new_id, user_client
from tests.test_api_support import key, ok, raw  # noqa: F401 - raw is a fixture

ROBOT_URL = "https://8.8.8.8/cgi-bin/webhook/send?key=robot-key-123"


def department() -> str:
    return f"投资促进局 Investment Promotion {new_id()}"


async def create(http: httpx.AsyncClient, dept: str, url: str = ROBOT_URL, **extra: object) -> dict:
    return ok(await http.post("/webhooks", json={"department": dept, "url": url, **extra}), 201)


async def listed(http: httpx.AsyncClient, dept: str) -> list[dict]:
    return ok(await http.get("/webhooks", params={"department": dept}))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def admin(app, pool: asyncpg.Pool) -> AsyncIterator[ApiUser]:
    """An admin (of no department): manages every department's webhooks."""
    async with user_client(app, pool, ["admin"], None, "Admin Webhooks Test") as user:
        yield user


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def raw_admin(app, admin: ApiUser) -> AsyncIterator[httpx.AsyncClient]:
    """The admin, but a 500 is an answer (status 500), not an exception."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://accord.test/api/v1",
                                 headers={"Authorization": f"Bearer {admin.token}"}, timeout=60) as http:
        yield http


async def test_secret_is_shown_once_and_never_listed(admin: ApiUser, pool: asyncpg.Pool) -> None:
    dept = department()
    answer = await admin.http.post("/webhooks", json={"department": dept, "url": ROBOT_URL,
                                                      "description": "WeCom group of the bureau"})
    made = ok(answer, 201)
    assert answer.headers["cache-control"] == "no-store"
    assert set(made) == {"id", "department", "url", "description", "created_at", "revoked_at", "secret"}
    assert (made["department"], made["url"], made["description"]) == (dept, ROBOT_URL, "WeCom group of the bureau")
    assert len(made["secret"]) >= 43
    assert await pool.fetchval("SELECT secret FROM webhooks WHERE id = $1", made["id"]) == made["secret"]

    listing = await admin.http.get("/webhooks", params={"department": dept})
    assert [w["id"] for w in ok(listing)] == [made["id"]]
    assert "secret" not in ok(listing)[0]
    assert made["secret"] not in listing.text
    everything = await admin.http.get("/webhooks")
    assert made["id"] in {w["id"] for w in ok(everything)}
    assert made["secret"] not in everything.text


async def test_creation_is_audited_without_the_secret(admin: ApiUser, pool: asyncpg.Pool) -> None:
    made = await create(admin.http, department())
    events = await pool.fetch("SELECT * FROM audit_events WHERE action = 'webhook.created' AND entity_id = $1",
                              made["id"])
    assert len(events) == 1
    event = dict(events[0])
    assert (event["actor_id"], event["entity_type"], event["outcome"]) == (admin.user_id, "webhook", "succeeded")
    assert event["after"]["department"] == made["department"]
    assert event["after"]["url_origin"] == "https://8.8.8.8"
    text = json.dumps(event, default=str)
    assert made["secret"] not in text
    assert "robot-key-123" not in text


async def test_revoked_webhook_disappears_and_repeat_changes_nothing(admin: ApiUser, pool: asyncpg.Pool) -> None:
    dept = department()
    kept = await create(admin.http, dept)
    gone = await create(admin.http, dept)

    revoked = ok(await admin.http.delete(f"/webhooks/{gone['id']}"))
    assert revoked["revoked_at"] is not None
    assert "secret" not in revoked
    again = ok(await admin.http.delete(f"/webhooks/{gone['id']}"))
    assert again["revoked_at"] == revoked["revoked_at"]

    assert [w["id"] for w in await listed(admin.http, dept)] == [kept["id"]]
    events = await pool.fetch("SELECT actor_id FROM audit_events WHERE action = 'webhook.revoked' AND entity_id = $1",
                              gone["id"])
    assert [e["actor_id"] for e in events] == [admin.user_id]


async def test_unknown_webhook_is_404(admin: ApiUser, api) -> None:
    for user in (admin, api):  # unknown, whoever asks: a 404 before any question of rights
        answer = await user.http.delete(f"/webhooks/{new_id('nope-')}")
        assert answer.status_code == 404


# ---------------------------------------------------------------- who manages a department's webhooks


async def refusals_of(pool: asyncpg.Pool, user_id: str, action: str) -> list[tuple[str, str]]:
    rows = await pool.fetch("SELECT outcome, error FROM audit_events WHERE actor_id = $1 AND action = $2 ORDER BY seq",
                            user_id, action)
    return [(r["outcome"], r["error"]) for r in rows]


async def test_a_liaison_officer_may_not_add_or_revoke_webhooks(api, admin: ApiUser, pool: asyncpg.Pool) -> None:
    """Not even for their own department: the notification settings are its leaders' (or an admin's)."""
    before = await pool.fetchval("SELECT count(*) FROM webhooks WHERE department = $1", API_DEPARTMENT)
    answer = await api.http.post("/webhooks", json={"department": API_DEPARTMENT, "url": ROBOT_URL})
    assert answer.status_code == 403, answer.text
    assert "secret" not in answer.json()
    assert await pool.fetchval("SELECT count(*) FROM webhooks WHERE department = $1", API_DEPARTMENT) == before
    assert ("refused", answer.json()["detail"]) in await refusals_of(pool, api.user_id, "api:POST /webhooks")

    # (Another department's webhook: one of API_DEPARTMENT would be posted to by the session's reminders.)
    made = await create(admin.http, department())
    answer = await api.http.delete(f"/webhooks/{made['id']}")
    assert answer.status_code == 403, answer.text
    assert await pool.fetchval("SELECT revoked_at FROM webhooks WHERE id = $1", made["id"]) is None
    assert ok(await admin.http.delete(f"/webhooks/{made['id']}"))["revoked_at"] is not None


async def test_a_leader_manages_the_webhooks_of_departments_under_them(app, pool: asyncpg.Pool) -> None:
    dept, sub, other = department(), department(), department()
    async with user_client(app, pool, ["leader"], dept, "Director Webhooks") as leader, \
            user_client(app, pool, ["leader"], other, "Director Elsewhere") as stranger:
        async with pool.acquire() as conn:
            assert await create_department(conn, sub, dept, "tests")
        # Their own department and the one below it (the reach is read at each request).
        own = await create(leader.http, dept)
        below = await create(leader.http, sub)
        assert [w["id"] for w in await listed(leader.http, sub)] == [below["id"]]

        # A leader of another department may neither add to nor revoke from it...
        answer = await stranger.http.post("/webhooks", json={"department": dept, "url": ROBOT_URL})
        assert answer.status_code == 403, answer.text
        assert await pool.fetchval("SELECT count(*) FROM webhooks WHERE department = $1", dept) == 1
        answer = await stranger.http.delete(f"/webhooks/{own['id']}")
        assert answer.status_code == 404, answer.text  # another department's: as if it did not exist
        assert await pool.fetchval("SELECT revoked_at FROM webhooks WHERE id = $1", own["id"]) is None
        assert len(await refusals_of(pool, stranger.user_id, "api:POST /webhooks")) == 1
        assert len(await refusals_of(pool, stranger.user_id, "api:DELETE /webhooks/{webhook_id}")) == 1
        # ... nor may the leader reach above their department.
        answer = await leader.http.post("/webhooks", json={"department": other, "url": ROBOT_URL})
        assert answer.status_code == 403, answer.text

        assert ok(await leader.http.delete(f"/webhooks/{own['id']}"))["revoked_at"] is not None
        assert [w["id"] for w in await listed(leader.http, dept)] == []


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/x",
    "http://169.254.169.254/latest",
    "http://10.0.0.5/",
    "http://localhost/",
    "http://[::1]/hook",
    "http://192.168.1.20/robot",
])
async def test_internal_targets_are_refused_when_saved(admin: ApiUser, pool: asyncpg.Pool, url: str) -> None:
    dept = department()
    answer = await admin.http.post("/webhooks", json={"department": dept, "url": url})
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "url"]
    assert error["msg"]
    assert await pool.fetchval("SELECT count(*) FROM webhooks WHERE department = $1", dept) == 0


@pytest.mark.parametrize("url", ["ftp://8.8.8.8/hook", "file:///etc/passwd", "not a url", "https://"])
async def test_unusable_urls_are_422_on_the_field(admin: ApiUser, url: str) -> None:
    answer = await admin.http.post("/webhooks", json={"department": department(), "url": url})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "url"]


@pytest.mark.parametrize("body, field", [
    ({"url": ROBOT_URL}, "department"),
    ({"department": "Bureau"}, "url"),
    ({"department": "Bureau", "url": ROBOT_URL, "secret": "mine"}, "secret"),
    ({"department": "", "url": ROBOT_URL}, "department"),
    ({"department": "Bureau", "url": "https://8.8.8.8/" + "a" * 2000}, "url"),
])
async def test_bad_webhook_bodies_are_422(admin: ApiUser, body: dict, field: str) -> None:
    answer = await admin.http.post("/webhooks", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", field]


async def test_private_targets_are_allowed_only_by_the_setting(app, admin: ApiUser, pool: asyncpg.Pool) -> None:
    services = dataclasses.replace(app.state.services, allow_private_webhooks=True)
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://accord.test/api/v1",
                                 headers={"Authorization": f"Bearer {admin.token}"}, timeout=60) as http:
        made = await create(http, department(), url="http://10.0.0.5/robot")
    assert made["url"] == "http://10.0.0.5/robot"


async def test_a_retried_creation_answers_the_same_secret(admin: ApiUser) -> None:
    dept, idempotency_key = department(), key()
    body = {"department": dept, "url": ROBOT_URL}
    first = ok(await admin.http.post("/webhooks", json=body, headers={"Idempotency-Key": idempotency_key}), 201)
    retry = await admin.http.post("/webhooks", json=body, headers={"Idempotency-Key": idempotency_key})
    assert ok(retry, 201) == first
    assert [w["id"] for w in await listed(admin.http, dept)] == [first["id"]]


GARBAGE = ["\x00", "a\x00b", "x" * 100_000, "../../etc/passwd", "%00", "💥" * 50, "' OR 1=1 --", "\r\nX: y"]


@pytest.mark.parametrize("value", GARBAGE)
async def test_garbage_is_never_a_500(raw, raw_admin: httpx.AsyncClient, value: str) -> None:
    """No reminder-side route crashes on bad input (`raw` turns a crash into a 500 answer).

    Sent by the liaison officer and by an admin: each gets past a different rule (the admin
    manages webhooks, the officer sees a department), so the bad input reaches every handler."""
    for http in (raw, raw_admin):
        await _no_500(http, value)


async def _no_500(raw: httpx.AsyncClient, value: str) -> None:
    short = value[:5000]  # httpx itself refuses longer URLs
    segment = quote(short, safe="")  # a path segment as a client would send it
    answers = [
        await raw.post("/webhooks", json={"department": value, "url": value, "description": value}),
        await raw.post("/webhooks", content=value.encode(), headers={"content-type": "application/json"}),
        await raw.get("/webhooks", params={"department": short}),
        await raw.delete(f"/webhooks/{segment}"),
        await raw.get("/inbox", params={"before": short, "unread": short, "limit": short}),
        await raw.get("/inbox", params={"before": short}),
        await raw.post(f"/inbox/{segment}/read"),
        await raw.put("/me/notifications", json={"email": value, "language": value}),
        await raw.post("/calendar-feeds", json={"scope": value, "department": value}),
        await raw.post("/calendar-feeds", json={"scope": "department", "department": value}),
        await raw.delete(f"/calendar-feeds/{segment}"),
        await raw.get(f"/feeds/{segment}.ics"),
        await raw.get(f"/feeds/{segment}"),
    ]
    statuses = {a.request.method + " " + a.request.url.path[:60]: a.status_code for a in answers}
    assert all(s < 500 for s in statuses.values()), statuses
