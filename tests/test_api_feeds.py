"""Calendar feeds through the HTTP API: a secret URL that calendar apps fetch without a token.

The projects and milestones come from the real lifecycle (a cooperation with signed
agreements, projects created, milestones completed and moved, projects suspended
and cancelled, all over HTTP), so the feed is checked against the read model as the
workflows write it. The ICS is parsed with `icalendar`, and each feed must hold
exactly the open milestones of running projects it covers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

import asyncpg
import httpx
import icalendar
import pytest
import pytest_asyncio

from api.services import office_today
from tests.conftest import ApiUser, new_id
from tests.test_api_inbox import user_client
from tests.test_api_support import in_delivery, ok

DUE = date(2027, 3, 1)


@dataclass
class Cast:
    """A department, a person in it (by display name and username), and who owns which milestone."""

    department: str
    other_department: str
    name: str
    username: str
    projects: dict[str, str]  # label -> project id


def uid(project_id: str, milestone_id: str) -> str:
    return f"{project_id}.{milestone_id}@accord"


async def project(http: httpx.AsyncClient, coop, department: str, officer: str, *owners: str | None) -> str:
    """A project with one milestone per owner, `m1`, `m2`, ... due a week apart."""
    milestones = [{"name": f"Milestone {i + 1}", "due_date": (DUE + timedelta(weeks=i)).isoformat(), "owner": owner}
                  for i, owner in enumerate(owners)]
    return await coop.add_project(responsible_department=department, responsible_officer=officer,
                                  milestones=milestones)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cast(api, pool: asyncpg.Pool) -> Cast:
    """Projects of every kind the feed must include or leave out."""
    suffix = new_id()
    dept, other = f"Park Committee {suffix}", f"Commerce Bureau {suffix}"
    name, username = f"Officer Zhao {suffix}", f"zhao-{suffix}"
    http = api.http
    coop = await in_delivery(http)
    projects = {
        "mine": await project(http, coop, dept, name, None, None, None),     # m2 done, m3 moved
        "owned": await project(http, coop, dept, "Officer Qian", username, "Officer Qian"),  # suspended
        "cancelled": await project(http, coop, dept, name, username),
        "elsewhere": await project(http, coop, other, "Officer Sun", None),
        "done": await project(http, coop, dept, name, None),  # completed: its only milestone done
    }
    today = office_today().isoformat()
    mine, done = projects["mine"], projects["done"]
    ok(await http.post(f"/projects/{mine}/milestones/m2/complete", json={"completed_on": today, "evidence": "licence"}))
    ok(await http.post(f"/projects/{mine}/milestones/m3/move",
                       json={"new_due_date": "2027-06-30", "reason": "land handover later"}))
    ok(await http.post(f"/projects/{projects['owned']}/suspend", json={"reason": "financing under review"}))
    ok(await http.post(f"/projects/{projects['cancelled']}/cancel", json={"reason": "company withdrew"}))
    ok(await http.post(f"/projects/{done}/milestones/m1/complete", json={"completed_on": today, "evidence": "done"}))
    assert await pool.fetchval("SELECT status FROM projects WHERE id = $1", done) == "completed"
    return Cast(dept, other, name, username, projects)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def zhao(app, pool: asyncpg.Pool, cast: Cast):
    """The person of the cast as an API user: display name and username as the projects name them,
    a liaison officer of the cast's department (a department feed needs a department one sees)."""
    async with user_client(app, pool, display_name=cast.name, username=cast.username,
                           department=cast.department) as user:
        yield user


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sun(app, pool: asyncpg.Pool, cast: Cast):
    """A liaison officer of the other department."""
    async with user_client(app, pool, display_name=f"Officer Sun {new_id()}",
                           department=cast.other_department) as user:
        yield user


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def anonymous(app):
    """A client with no Authorization header, as a calendar app fetches."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord.test/api/v1",
                                 timeout=60) as http:
        yield http


async def new_feed(user: ApiUser, **body: object) -> dict:
    return ok(await user.http.post("/calendar-feeds", json=body), 201)


def feed_path(url: str) -> str:
    return url.split("/api/v1", 1)[1]


async def fetch(http: httpx.AsyncClient, url: str) -> icalendar.Calendar:
    answer = await http.get(feed_path(url))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/calendar; charset=utf-8"
    assert answer.headers["cache-control"] == "private, max-age=300"
    return icalendar.Calendar.from_ical(answer.content)


def events(calendar: icalendar.Calendar) -> dict[str, icalendar.Event]:
    return {str(e["UID"]): e for e in calendar.walk("VEVENT")}


async def test_department_feed_holds_exactly_its_open_milestones(zhao: ApiUser, cast: Cast, anonymous) -> None:
    feed = await new_feed(zhao, scope="department", department=cast.department)
    found = events(await fetch(anonymous, feed["url"]))
    mine, owned = cast.projects["mine"], cast.projects["owned"]
    assert set(found) == {uid(mine, "m1"), uid(mine, "m3"), uid(owned, "m1"), uid(owned, "m2")}

    moved = found[uid(mine, "m3")]
    assert moved["DTSTART"].dt == date(2027, 6, 30)
    assert int(moved["SEQUENCE"]) == 1
    first = found[uid(mine, "m1")]
    assert first["DTSTART"].dt == DUE
    assert int(first["SEQUENCE"]) == 0
    assert "Milestone 1" in str(first["SUMMARY"])


async def test_other_departments_feed_shows_only_theirs(sun: ApiUser, cast: Cast, anonymous) -> None:
    feed = await new_feed(sun, scope="department", department=cast.other_department)
    found = events(await fetch(anonymous, feed["url"]))
    assert set(found) == {uid(cast.projects["elsewhere"], "m1")}


async def test_no_feed_of_a_department_one_does_not_see(app, zhao: ApiUser, cast: Cast, pool: asyncpg.Pool) -> None:
    """A feed URL outlives the session that made it: only a department whose records one sees."""
    before = await pool.fetchval("SELECT count(*) FROM calendar_feeds WHERE department = $1", cast.other_department)
    answer = await zhao.http.post("/calendar-feeds", json={"scope": "department",
                                                           "department": cast.other_department})
    assert answer.status_code == 403, answer.text
    assert "url" not in answer.text
    assert await pool.fetchval("SELECT count(*) FROM calendar_feeds WHERE department = $1",
                               cast.other_department) == before
    refused = await pool.fetch("SELECT * FROM audit_events WHERE actor_id = $1 AND action = 'api:POST /calendar-feeds'",
                               zhao.user_id)
    assert [(r["outcome"], r["error"]) for r in refused] == [("refused", answer.json()["detail"])]
    # A liaison officer of no department sees no department at all.
    async with user_client(app, pool) as nobody:
        answer = await nobody.http.post("/calendar-feeds", json={"scope": "department", "department": cast.department})
        assert answer.status_code == 403, answer.text


async def test_personal_feed_holds_projects_and_milestones_of_the_person(zhao: ApiUser, cast: Cast,
                                                                          anonymous) -> None:
    feed = await new_feed(zhao, scope="me")
    calendar = await fetch(anonymous, feed["url"])
    mine, owned = cast.projects["mine"], cast.projects["owned"]
    # Responsible officer by display name (all open milestones), milestone owner by username.
    assert set(events(calendar)) == {uid(mine, "m1"), uid(mine, "m3"), uid(owned, "m1")}
    assert cast.name in str(calendar["X-WR-CALNAME"])


async def test_feed_creation_shows_the_url_once_and_stores_only_a_hash(app, zhao: ApiUser, cast: Cast,
                                                                        pool: asyncpg.Pool) -> None:
    answer = await zhao.http.post("/calendar-feeds", json={"scope": "department", "department": cast.department})
    feed = ok(answer, 201)
    assert answer.headers["cache-control"] == "no-store"
    public_url = app.state.services.public_url
    assert feed["url"].startswith(f"{public_url}/api/v1/feeds/") and feed["url"].endswith(".ics")
    assert (feed["scope"], feed["department"]) == ("department", cast.department)
    secret = feed["url"].rsplit("/", 1)[1].removesuffix(".ics")
    assert len(secret) >= 43

    stored = await pool.fetchrow("SELECT * FROM calendar_feeds WHERE id = $1", feed["id"])
    assert bytes(stored["secret_hash"]) == hashlib.sha256(secret.encode()).digest()
    assert secret not in str(dict(stored))

    listing = await zhao.http.get("/calendar-feeds")
    assert feed["id"] in {f["id"] for f in ok(listing)}
    assert secret not in listing.text
    assert all("url" not in f for f in ok(listing))
    audit = await pool.fetch("SELECT * FROM audit_events WHERE action = 'calendar_feed.created' AND entity_id = $1",
                             feed["id"])
    assert len(audit) == 1
    assert secret not in str(dict(audit[0]))


async def test_each_fetch_is_audited_as_the_owner(zhao: ApiUser, cast: Cast, anonymous, pool: asyncpg.Pool) -> None:
    feed = await new_feed(zhao, scope="me")
    await fetch(anonymous, feed["url"])
    await fetch(anonymous, feed["url"])
    reads = await pool.fetch("SELECT * FROM audit_events WHERE action = 'calendar_feed.read' AND entity_id = $1",
                             feed["id"])
    assert len(reads) == 2
    assert {(r["actor_id"], r["actor_name"], r["auth_method"]) for r in reads} == {
        (zhao.user_id, cast.name, "feed_secret")}
    assert reads[0]["after"]["events"] == 3
    secret = feed["url"].rsplit("/", 1)[1].removesuffix(".ics")
    assert all(secret not in str(dict(r)) for r in reads)


async def test_revoked_and_unknown_feeds_are_the_same_404(zhao: ApiUser, anonymous) -> None:
    feed = await new_feed(zhao, scope="me")
    await fetch(anonymous, feed["url"])
    revoked = ok(await zhao.http.delete(f"/calendar-feeds/{feed['id']}"))
    assert revoked["revoked_at"] is not None
    assert ok(await zhao.http.delete(f"/calendar-feeds/{feed['id']}"))["revoked_at"] == revoked["revoked_at"]
    assert feed["id"] not in {f["id"] for f in ok(await zhao.http.get("/calendar-feeds"))}

    gone = await anonymous.get(feed_path(feed["url"]))
    unknown = await anonymous.get("/feeds/" + "A" * 43 + ".ics")
    assert gone.status_code == unknown.status_code == 404
    assert gone.json() == unknown.json()
    for malformed in ("/feeds/short.ics", "/feeds/" + "a" * 43 + "%2F..ics", "/feeds/" + "!" * 43 + ".ics"):
        assert (await anonymous.get(malformed)).status_code == 404


async def test_only_the_creator_can_see_or_revoke_a_feed(app, pool: asyncpg.Pool, zhao: ApiUser, anonymous) -> None:
    feed = await new_feed(zhao, scope="me")
    async with user_client(app, pool) as other:
        assert (await other.http.delete(f"/calendar-feeds/{feed['id']}")).status_code == 404
        assert feed["id"] not in {f["id"] for f in ok(await other.http.get("/calendar-feeds"))}
    await fetch(anonymous, feed["url"])  # still works
    assert (await zhao.http.delete(f"/calendar-feeds/{new_id('nope-')}")).status_code == 404


async def test_managing_feeds_needs_a_token(anonymous) -> None:
    assert (await anonymous.get("/calendar-feeds")).status_code == 401
    assert (await anonymous.post("/calendar-feeds", json={"scope": "me"})).status_code == 401


@pytest.mark.parametrize("body, field", [
    ({"scope": "department"}, "department"),
    ({"scope": "department", "department": None}, "department"),
    ({"scope": "department", "department": "  "}, "department"),
    ({"scope": "me", "department": "Park Committee"}, "department"),
    ({"scope": "team"}, "scope"),
    ({}, "scope"),
    ({"scope": "me", "secret": "mine"}, "secret"),
])
async def test_bad_feed_bodies_are_422_on_the_field(api, body: dict, field: str) -> None:
    answer = await api.http.post("/calendar-feeds", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", field]
