"""Reminders through the HTTP API: upcoming notices, what-if, policies, the calendar, deliveries.

Real parts only: the app, PostgreSQL, the Temporal dev server and the session worker.
The session runs on the calendar "test: always open" (every day of 2024-2030 is a
working day, the office is open 0-24 and notices go out at 00:00 office time), so
"N working days before" is N calendar days before, and a notice planned for today or
earlier goes out at once. The expected schedules below are written out by hand from
those rules and the default policy (30, 7 and 1 working days before, on the due date,
every 7 days overdue, department leader after 3 and leadership office after 10
working days), relative to the real current date.

The calendar is shared by the whole session: the calendar test changes only 2030,
on dates no other test uses, and puts the year back in a `finally`.
"""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client

from db.reminder_settings import current_calendar, save_calendar
from db.users import User, create_user, issue_token
from domain.audit import OFFICE_TZ
from domain.calendar import WorkingCalendar
from runtime.mail_sink import MailSink
from runtime.reminders import open_project_ids, tell_projects
from tests.conftest import ALWAYS_OPEN, ApiUser, new_id
from tests.test_api_support import Coop, eventually, in_delivery, ok, plain_failure

LEADERSHIP = "Leadership office (tests)"  # the session's leadership department (conftest)
YEAR = 2030
CALENDAR_DUE = date(2030, 6, 12)  # a Wednesday
HOLIDAYS = [date(2030, 6, 10), date(2030, 6, 11)]  # Monday and Tuesday before it
WORKDAY = date(2030, 6, 8)  # a Saturday, worked instead
QUIET = {"before_working_days": [5], "escalation": []}


def today() -> date:
    return datetime.now(OFFICE_TZ).date()


def at(day: date) -> datetime:
    """When a notice planned for `day` goes out: 00:00 office time (UTC+8), the session's reminder hour."""
    return datetime.combine(day, time(0), tzinfo=OFFICE_TZ)


def when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


# ---------------------------------------------------------------- people and projects


@dataclass
class Cast:
    department: str
    officer: User  # the projects' responsible officer, with an email address
    leader: User  # a leader of the projects' department
    coop: Coop


async def make_user(pool: asyncpg.Pool, display_name: str, role: str, department: str | None = None,
                    address: str | None = None) -> User:
    async with pool.acquire() as conn:
        user = await create_user(conn, new_id("user-"), display_name, role, department)
        if address is not None:
            await conn.execute("UPDATE users SET email = $2 WHERE id = $1", user.id, address)
    return user


@asynccontextmanager
async def as_user(app, pool: asyncpg.Pool, user: User) -> AsyncIterator[ApiUser]:
    async with pool.acquire() as conn:
        token = await issue_token(conn, user.id, "tests")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord.test/api/v1",
                                 headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        yield ApiUser(token=token, user_id=user.id, http=http)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cast(api: ApiUser, pool: asyncpg.Pool) -> Cast:
    suffix = new_id()
    department = f"Reminder Bureau {suffix}"
    officer = await make_user(pool, f"Officer Liu {suffix}", "liaison_officer",
                              address=f"liu-{suffix}@mianyang.gov.cn")
    leader = await make_user(pool, f"Director Ma {suffix}", "leader", department=department)
    return Cast(department, officer, leader, await in_delivery(api.http))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def leader(app, pool: asyncpg.Pool, cast: Cast) -> AsyncIterator[ApiUser]:
    async with as_user(app, pool, cast.leader) as user:
        yield user


async def name_of(pool: asyncpg.Pool, user_id: str) -> str:
    return await pool.fetchval("SELECT display_name FROM users WHERE id = $1", user_id)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def admin(app, pool: asyncpg.Pool) -> AsyncIterator[ApiUser]:
    """Organization policies and the calendar are an admin's (domain/access.py)."""
    async with as_user(app, pool, await make_user(pool, f"Admin {new_id()}", "admin")) as user:
        yield user


async def new_project(cast: Cast, *dues: date, coop: Coop | None = None, officer: str | None = None) -> str:
    """A project of the cast's department with milestones m1, m2, ... due on `dues` (no owners)."""
    milestones = [{"name": f"Milestone {i + 1}", "due_date": due.isoformat()} for i, due in enumerate(dues)]
    return await (coop or cast.coop).add_project(responsible_department=cast.department,
                                                 responsible_officer=officer or cast.officer.display_name,
                                                 milestones=milestones)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def project(cast: Cast) -> tuple[str, date, date]:
    """A project nobody changes: m1 due in 60 days, m2 in 200."""
    first, second = today() + timedelta(days=60), today() + timedelta(days=200)
    return await new_project(cast, first, second), first, second


# ---------------------------------------------------------------- expected schedules


def plan(milestone_id: str, *rows: tuple[str, str, date, str]) -> list[tuple]:
    return [(milestone_id, kind, rule, at(day), recipient) for kind, rule, day, recipient in rows]


def default_plan(milestone_id: str, due: date) -> list[tuple]:
    """The default policy on the always-open calendar, for a milestone without an owner."""
    days = timedelta
    return plan(
        milestone_id,
        ("before_30", "before", due - days(30), "liaison_officer"),
        ("before_7", "before", due - days(7), "liaison_officer"),
        ("before_1", "before", due - days(1), "liaison_officer"),
        ("due", "due", due, "liaison_officer"),
        ("escalation_department_leader", "escalation", due + days(3), "department_leader"),
        ("overdue_7", "overdue", due + days(7), "liaison_officer"),
        ("escalation_leadership_office", "escalation", due + days(10), "leadership_office"),
    )


def quiet_plan(milestone_id: str, due: date) -> list[tuple]:
    """QUIET: 5 working days before, on the due date, weekly while overdue, no escalation."""
    return plan(milestone_id,
                ("before_5", "before", due - timedelta(days=5), "liaison_officer"),
                ("due", "due", due, "liaison_officer"),
                ("overdue_7", "overdue", due + timedelta(days=7), "liaison_officer"))


def schedule(notices: list[dict[str, Any]]) -> list[tuple]:
    return [(n["milestone_id"], n["kind"], n["rule"], when(n["fire_at"]), n["recipient"]) for n in notices]


def policies(notices: list[dict[str, Any]]) -> set[tuple[str, int]]:
    return {(n["policy_id"], n["policy_version"]) for n in notices}


async def notices_of(user: ApiUser, project_id: str) -> list[dict[str, Any]]:
    return ok(await user.http.get(f"/projects/{project_id}/notices"))


async def calendar_version(user: ApiUser) -> int:
    return ok(await user.http.get("/calendar"))["version"]


async def leadership_recipients(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Whoever holds the leadership office role in this session (no test here adds anyone)."""
    rows = await pool.fetch("SELECT id, display_name, email FROM users WHERE role = 'leader' AND department = $1 "
                            "ORDER BY id", LEADERSHIP)
    return [{"user_id": r["id"], "name": r["display_name"], "channels": ["inbox", "email"] if r["email"] else ["inbox"]}
            for r in rows]


def person(user: User, *channels: str) -> dict[str, Any]:
    return {"user_id": user.id, "name": user.display_name, "channels": list(channels)}


# ---------------------------------------------------------------- upcoming notices


async def test_upcoming_notices_follow_the_default_policy(api: ApiUser, cast: Cast, project, pool) -> None:
    pid, first, second = project
    notices = await notices_of(api, pid)

    assert schedule(notices) == default_plan("m1", first) + default_plan("m2", second)
    version = await calendar_version(api)
    due_dates = {"m1": first.isoformat(), "m2": second.isoformat()}
    for n in notices:
        assert n["key"] == f"{pid}/{n['milestone_id']}/v0/{n['kind']}"
        assert n["project_id"] == pid
        assert n["due_date"] == due_dates[n["milestone_id"]]
        assert n["milestone_name"] == {"m1": "Milestone 1", "m2": "Milestone 2"}[n["milestone_id"]]
        assert (n["policy_id"], n["policy_version"]) == ("default", 1)
        assert (n["calendar_name"], n["calendar_version"]) == (ALWAYS_OPEN, version)
        assert n["due_version"] == 0
        assert n["estimated"] is False
        assert n["replaces"] == []
        # Every day is a working day: nothing moves off the day the rule names.
        assert at(date.fromisoformat(n["nominal_day"])) == when(n["fire_at"]) == when(n["planned_at"])
    assert [n["rule_text"] for n in notices[:7]] == [
        "30 working days before the due date", "7 working days before the due date",
        "1 working days before the due date", "on the due date",
        "3 working days overdue: escalate to department_leader", "every 7 days while overdue (7 days)",
        "10 working days overdue: escalate to leadership_office"]

    expected = {
        "liaison_officer": [person(cast.officer, "inbox", "email")],  # found by display name
        "department_leader": [person(cast.leader, "inbox")],  # no email address: inbox only
        "leadership_office": await leadership_recipients(pool),
    }
    for n in notices:
        assert n["recipients"] == expected[n["recipient"]], n["key"]


async def test_the_default_policy_is_published(api: ApiUser) -> None:
    policy = ok(await api.http.get("/reminder-policies/default"))
    assert policy["policy_id"] == "default"
    assert policy["version"] == 1
    assert policy["before_working_days"] == [30, 7, 1]
    assert policy["on_due_date"] is True
    assert policy["overdue_every_days"] == 7
    assert policy["escalation"] == [{"after_working_days": 3, "recipient": "department_leader"},
                                    {"after_working_days": 10, "recipient": "leadership_office"}]
    assert policy["recipient"] == "owner"


async def test_an_owner_found_by_username_gets_the_routine_notices(api: ApiUser, cast: Cast, pool) -> None:
    owner = await make_user(pool, f"Engineer Zhou {new_id()}", "liaison_officer")
    due = today() + timedelta(days=90)
    pid = await cast.coop.add_project(
        responsible_department=cast.department, responsible_officer=cast.officer.display_name,
        milestones=[{"name": "Land handover", "due_date": due.isoformat(), "owner": owner.username},
                    {"name": "Licence", "due_date": due.isoformat(), "owner": f"Nobody {new_id()}"}])
    notices = await notices_of(api, pid)
    routine = [n for n in notices if n["rule"] != "escalation"]
    assert {(n["milestone_id"], n["recipient"]) for n in routine} == {("m1", "owner"), ("m2", "owner")}
    assert all(n["recipients"] == [person(owner, "inbox")] for n in routine if n["milestone_id"] == "m1")
    # An owner nobody is called falls back to the liaison officer.
    assert all(n["recipients"] == [person(cast.officer, "inbox", "email")]
               for n in routine if n["milestone_id"] == "m2")


# ---------------------------------------------------------------- what-if


async def test_what_if_shows_the_moved_schedule_and_changes_nothing(api: ApiUser, cast: Cast, project) -> None:
    pid, first, second = project
    before = await notices_of(api, pid)
    moved_to = first + timedelta(days=30)

    view = ok(await api.http.get(f"/projects/{pid}/milestones/m1/what-if", params={"due_date": moved_to.isoformat()}))

    assert view["milestone_id"] == "m1"
    assert (view["current_due_date"], view["new_due_date"]) == (first.isoformat(), moved_to.isoformat())
    assert schedule(view["current"]) == default_plan("m1", first)
    assert {(n["due_version"], n["key"].split("/")[2]) for n in view["current"]} == {(0, "v0")}
    assert schedule(view["if_moved"]) == default_plan("m1", moved_to)
    for n in view["if_moved"]:
        assert n["key"] == f"{pid}/m1/v1/{n['kind']}"
        assert n["due_version"] == 1
        assert n["due_date"] == moved_to.isoformat()
        assert (n["policy_id"], n["policy_version"]) == ("default", 1)
    assert view["if_moved"][0]["recipients"] == [person(cast.officer, "inbox", "email")]

    # Nothing changed: the schedule, the due date, the project's move history.
    assert await notices_of(api, pid) == before
    milestone = ok(await api.http.get(f"/projects/{pid}"))["milestones"][0]
    assert (milestone["id"], milestone["due_date"], milestone["moves"]) == ("m1", first.isoformat(), [])


async def test_what_if_to_the_same_date_is_the_current_schedule(api: ApiUser, project) -> None:
    pid, _, second = project
    view = ok(await api.http.get(f"/projects/{pid}/milestones/m2/what-if", params={"due_date": second.isoformat()}))
    assert view["if_moved"] == view["current"]
    assert schedule(view["current"]) == default_plan("m2", second)


async def test_unknown_projects_and_milestones_are_404(api: ApiUser, project, pool) -> None:
    pid, first, _ = project
    ghost = new_id("ghost-")
    params = {"due_date": first.isoformat()}
    assert (await api.http.get(f"/projects/{pid}/milestones/m9/what-if", params=params)).status_code == 404
    assert (await api.http.get(f"/projects/{ghost}/milestones/m1/what-if", params=params)).status_code == 404
    assert (await api.http.get(f"/projects/{ghost}/notices")).status_code == 404
    assert (await api.http.get(f"/projects/{ghost}/deliveries")).status_code == 404
    assert (await api.http.get(f"/projects/{ghost}/reminder-policy")).status_code == 404
    assert (await api.http.put(f"/projects/{ghost}/reminder-policy", json=QUIET)).status_code == 404
    assert (await api.http.delete(f"/projects/{ghost}/reminder-policy")).status_code == 404
    for method in ("GET", "PUT", "DELETE"):
        answer = await api.http.request(method, f"/projects/{pid}/milestones/m9/reminder-policy",
                                        json=QUIET if method == "PUT" else None)
        assert answer.status_code == 404, method
    stored = await pool.fetchval("SELECT count(*) FROM reminder_policies WHERE scope_id LIKE $1 OR scope_id = $2",
                                 f"{pid}%", ghost)
    assert stored == 0


@pytest.mark.parametrize("due_date", ["2027-02-30", "next week", "", "2027-13-01"])
async def test_what_if_with_a_bad_date_is_422(api: ApiUser, project, due_date: str) -> None:
    pid = project[0]
    answer = await api.http.get(f"/projects/{pid}/milestones/m1/what-if", params={"due_date": due_date})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["query", "due_date"]


async def test_what_if_without_a_date_is_422(api: ApiUser, project) -> None:
    answer = await api.http.get(f"/projects/{project[0]}/milestones/m1/what-if")
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["query", "due_date"]


# ---------------------------------------------------------------- policies


async def policy_audit(pool: asyncpg.Pool, entity_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT action, after, project_id, actor_id, actor_role, outcome FROM audit_events "
        "WHERE entity_type = 'reminder_policy' AND entity_id = $1 ORDER BY seq", entity_id)


async def deliveries_of(user: ApiUser, project_id: str) -> list[dict[str, Any]]:
    return ok(await user.http.get(f"/projects/{project_id}/deliveries"))


async def test_project_policy_versions_apply_and_can_be_removed(api: ApiUser, cast: Cast, pool) -> None:
    first, second = today() + timedelta(days=60), today() + timedelta(days=200)
    pid = await new_project(cast, first, second)
    path = f"/projects/{pid}/reminder-policy"
    assert ok(await api.http.get(path)) == {"scope": "project", "scope_id": pid, "effective": None,
                                            "inherits": True, "history": []}

    one = ok(await api.http.put(path, json={**QUIET, "note": "fewer reminders for a small project"}))
    assert (one["scope"], one["scope_id"], one["inherits"]) == ("project", pid, False)
    assert one["effective"]["policy_id"] == f"project:{pid}"
    assert one["effective"]["version"] == 1
    assert one["effective"]["before_working_days"] == [5]
    assert one["effective"]["escalation"] == []
    assert [v["version"] for v in one["history"]] == [1]
    assert one["history"][0]["note"] == "fewer reminders for a small project"
    assert one["history"][0]["created_by"] == "Liaison Officer Test"

    async def quiet_schedule() -> list[dict[str, Any]] | None:
        notices = await notices_of(api, pid)
        return notices if policies(notices) == {(f"project:{pid}", 1)} else None

    notices = await eventually(quiet_schedule)
    assert schedule(notices) == quiet_plan("m1", first) + quiet_plan("m2", second)

    # Version 2 adds a notice 60 working days before m1: today, so the workflow, told by the
    # signal, reloads its setup and sends it at once.
    two = ok(await api.http.put(path, json={
        "before_working_days": [5, 60], "overdue_every_days": 14,
        "escalation": [{"after_working_days": 2, "recipient": "department_leader"}]}))
    assert two["effective"]["version"] == 2
    assert two["effective"]["before_working_days"] == [60, 5]
    assert [v["version"] for v in two["history"]] == [2, 1]
    assert all(v["active"] for v in two["history"])
    assert two["history"][1]["policy"] == one["effective"]

    async def sent_today() -> list[dict[str, Any]]:
        return [d for d in await deliveries_of(api, pid)
                if d["notice"]["kind"] == "before_60" and d["channel"] == "inbox" and d["status"] == "sent"]

    (delivery,) = await eventually(sent_today, timeout=30)
    assert delivery["notice_key"] == f"{pid}/m1/v0/before_60"
    assert (delivery["notice"]["policy_id"], delivery["notice"]["policy_version"]) == (f"project:{pid}", 2)
    assert when(delivery["planned_for"]) == at(today())

    days = timedelta
    notices = await notices_of(api, pid)
    assert policies(notices) == {(f"project:{pid}", 2)}
    assert schedule(notices) == plan(  # before_60 of m1 is sent, so no longer listed
        "m1",
        ("before_5", "before", first - days(5), "liaison_officer"),
        ("due", "due", first, "liaison_officer"),
        ("escalation_department_leader", "escalation", first + days(2), "department_leader"),
        ("overdue_14", "overdue", first + days(14), "liaison_officer"),
    ) + plan(
        "m2",
        ("before_60", "before", second - days(60), "liaison_officer"),
        ("before_5", "before", second - days(5), "liaison_officer"),
        ("due", "due", second, "liaison_officer"),
        ("escalation_department_leader", "escalation", second + days(2), "department_leader"),
        ("overdue_14", "overdue", second + days(14), "liaison_officer"),
    )

    removed = ok(await api.http.delete(path))
    assert (removed["inherits"], removed["effective"]) == (True, None)
    assert [(v["version"], v["active"]) for v in removed["history"]] == [(3, False), (2, True), (1, True)]
    assert removed["history"][0]["policy"] is None
    assert ok(await api.http.get(path)) == removed
    notices = await notices_of(api, pid)
    assert schedule(notices) == default_plan("m1", first) + default_plan("m2", second)
    assert policies(notices) == {("default", 1)}

    audit = await policy_audit(pool, f"project:{pid}")
    assert [(e["action"], e["after"]["version"]) for e in audit] == [
        ("reminder_policy.set", 1), ("reminder_policy.set", 2), ("reminder_policy.removed", 3)]
    assert {(e["project_id"], e["actor_id"], e["outcome"]) for e in audit} == {(pid, api.user_id, "succeeded")}
    assert audit[0]["after"]["policy"]["before_working_days"] == [5]
    assert audit[2]["after"]["policy"] is None


@plain_failure
async def test_a_milestone_policy_beats_the_project_policy(api: ApiUser, cast: Cast, pool) -> None:
    first, second = today() + timedelta(days=60), today() + timedelta(days=200)
    pid = await new_project(cast, first, second)
    ok(await api.http.put(f"/projects/{pid}/reminder-policy", json=QUIET))
    path = f"/projects/{pid}/milestones/m2/reminder-policy"
    view = ok(await api.http.put(path, json={"before_working_days": [2], "on_due_date": False,
                                             "overdue_every_days": None, "escalation": []}))
    assert (view["scope"], view["scope_id"]) == ("milestone", f"{pid}/m2")
    assert (view["effective"]["policy_id"], view["effective"]["version"]) == (f"milestone:{pid}/m2", 1)

    notices = await notices_of(api, pid)
    assert schedule(notices) == quiet_plan("m1", first) + plan(
        "m2", ("before_2", "before", second - timedelta(days=2), "liaison_officer"))
    assert {n["milestone_id"]: (n["policy_id"], n["policy_version"]) for n in notices} == {
        "m1": (f"project:{pid}", 1), "m2": (f"milestone:{pid}/m2", 1)}
    assert ok(await api.http.get(path))["effective"] == view["effective"]

    removed = ok(await api.http.delete(path))
    assert removed["inherits"] is True
    notices = await notices_of(api, pid)
    assert schedule(notices) == quiet_plan("m1", first) + quiet_plan("m2", second)
    assert [e["action"] for e in await policy_audit(pool, f"milestone:{pid}/m2")] == [
        "reminder_policy.set", "reminder_policy.removed"]


@pytest.mark.parametrize("body, loc", [
    ({"before_working_days": [-1]}, ["body", "before_working_days", 0]),
    ({"before_working_days": [0]}, ["body", "before_working_days", 0]),
    ({"before_working_days": [30, 401]}, ["body", "before_working_days", 1]),
    ({"before_working_days": [7, 7]}, ["body", "before_working_days"]),
    ({"before_working_days": "30"}, ["body", "before_working_days"]),
    ({"overdue_every_days": 0}, ["body", "overdue_every_days"]),
    ({"overdue_every_days": 401}, ["body", "overdue_every_days"]),
    ({"escalation": [{"after_working_days": 0, "recipient": "department_leader"}]},
     ["body", "escalation", 0, "after_working_days"]),
    ({"escalation": [{"after_working_days": 3, "recipient": "department_leader"},
                     {"after_working_days": 9, "recipient": "department_leader"}]}, ["body", "escalation"]),
    ({"escalation": [{"after_working_days": 3, "recipient": "mayor"}]}, ["body", "escalation", 0, "recipient"]),
    ({"escalation": [{"after_working_days": 3, "recipient": "owner", "cc": "x"}]}, ["body", "escalation", 0, "cc"]),
    ({"recipient": "everyone"}, ["body", "recipient"]),
    ({"before_working_days": [5], "colour": "red"}, ["body", "colour"]),
    ({"policy_id": "mine"}, ["body", "policy_id"]),
    ({"version": 7}, ["body", "version"]),
])
async def test_bad_policies_are_422_and_change_nothing(api: ApiUser, project, pool, body: dict,
                                                       loc: list) -> None:
    pid = project[0]
    answer = await api.http.put(f"/projects/{pid}/reminder-policy", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == loc
    assert await pool.fetchval("SELECT count(*) FROM reminder_policies WHERE scope_id = $1", pid) == 0
    assert await policy_audit(pool, f"project:{pid}") == []


async def test_organization_policy_needs_an_admin_and_applies_to_its_projects(api: ApiUser, leader: ApiUser, admin: ApiUser,
                                                                              cast: Cast, pool) -> None:
    coop = await in_delivery(api.http)  # its own lead organization: nobody else's projects are touched
    org = coop.w.gov_id
    due = today() + timedelta(days=60)
    pid = await new_project(cast, due, coop=coop)
    path = f"/organizations/{org}/reminder-policy"
    body = {"name": "County office rules", "before_working_days": [3], "escalation": []}

    assert (await api.http.put(path, json=body)).status_code == 403
    assert (await api.http.delete(path)).status_code == 403
    # A leader neither: it would change other departments' reminders.
    assert (await leader.http.put(path, json=body)).status_code == 403
    assert await pool.fetchval("SELECT count(*) FROM reminder_policies WHERE scope_id = $1", org) == 0
    assert ok(await api.http.get(path))["inherits"] is True

    view = ok(await admin.http.put(path, json=body))
    assert (view["scope"], view["scope_id"], view["inherits"]) == ("organization", org, False)
    assert (view["effective"]["policy_id"], view["effective"]["version"]) == (f"organization:{org}", 1)
    assert view["effective"]["name"] == "County office rules"
    assert view["history"][0]["created_by"] == await name_of(pool, admin.user_id)
    assert ok(await api.http.get(path)) == view

    organization_plan = plan("m1", ("before_3", "before", due - timedelta(days=3), "liaison_officer"),
                             ("due", "due", due, "liaison_officer"),
                             ("overdue_7", "overdue", due + timedelta(days=7), "liaison_officer"))
    notices = await notices_of(api, pid)
    assert schedule(notices) == organization_plan
    assert policies(notices) == {(f"organization:{org}", 1)}

    # The project's own policy beats the organization's; removing it falls back to the organization's.
    ok(await api.http.put(f"/projects/{pid}/reminder-policy", json=QUIET))
    notices = await notices_of(api, pid)
    assert schedule(notices) == quiet_plan("m1", due)
    assert policies(notices) == {(f"project:{pid}", 1)}
    ok(await api.http.delete(f"/projects/{pid}/reminder-policy"))
    assert schedule(await notices_of(api, pid)) == organization_plan

    # Other organizations' projects keep the default.
    assert policies(await notices_of(api, await new_project(cast, due))) == {("default", 1)}

    removed = ok(await admin.http.delete(path))
    assert (removed["inherits"], [v["version"] for v in removed["history"]]) == (True, [2, 1])
    notices = await notices_of(api, pid)
    assert schedule(notices) == default_plan("m1", due)
    assert policies(notices) == {("default", 1)}

    ghost = new_id("ghost-")
    assert (await admin.http.put(f"/organizations/{ghost}/reminder-policy", json=body)).status_code == 404
    assert (await admin.http.delete(f"/organizations/{ghost}/reminder-policy")).status_code == 404
    assert (await api.http.get(f"/organizations/{ghost}/reminder-policy")).status_code == 404

    audit = await policy_audit(pool, f"organization:{org}")
    assert [(e["action"], e["after"]["version"]) for e in audit] == [
        ("reminder_policy.set", 1), ("reminder_policy.removed", 2)]
    assert {(e["project_id"], e["actor_id"], e["actor_role"]) for e in audit} == {
        (None, admin.user_id, "admin")}
    refused = await pool.fetchval(
        "SELECT count(*) FROM audit_events WHERE entity_id = $1 AND outcome = 'refused' AND actor_id = $2",
        org, api.user_id)
    assert refused == 2  # the liaison officer's PUT and DELETE


async def test_an_organization_policy_reaches_the_workflows_of_planned_projects(api: ApiUser, leader: ApiUser, admin: ApiUser,
                                                                                cast: Cast) -> None:
    """The organization's PUT signals every open project of the organization, planned ones included
    (a project stays planned until its first milestone is done, and is reminded meanwhile)."""
    coop = await in_delivery(api.http)
    org = coop.w.gov_id
    pid = await new_project(cast, today() + timedelta(days=60), coop=coop)
    assert ok(await api.http.get(f"/projects/{pid}"))["status"] == "planned"
    ok(await admin.http.put(f"/organizations/{org}/reminder-policy",
                             json={"before_working_days": [60, 7], "escalation": []}))

    async def sent() -> list[dict[str, Any]]:
        return [d for d in await deliveries_of(api, pid) if d["notice"]["kind"] == "before_60"
                and d["channel"] == "inbox" and d["status"] == "sent"]

    (delivery,) = await eventually(sent, timeout=30)
    assert (delivery["notice"]["policy_id"], delivery["notice"]["policy_version"]) == (f"organization:{org}", 1)
    assert delivery["recipient_id"] == cast.officer.id


# ---------------------------------------------------------------- the calendar


async def put_back(pool: asyncpg.Pool, client: Client, original: WorkingCalendar, year: int) -> None:
    """Restore `year` as the session set it up (its weekends are working days): a new version, then every
    open project reloads. Not through the API: a year's adjusted working days are capped at 30 there."""
    async with pool.acquire() as conn:
        current = await current_calendar(conn, ALWAYS_OPEN)
        holidays = {d for d in original.holidays if d.year == year}
        workdays = {d for d in original.workdays if d.year == year}
        if ({d for d in current.holidays if d.year == year}, {d for d in current.workdays if d.year == year}) == (
                holidays, workdays):
            return
        async with conn.transaction():
            await save_calendar(conn, current.with_year(year, holidays, workdays), "tests: year put back", "tests")
        targets = await open_project_ids(conn)
    await tell_projects(client, targets)


async def test_calendar_year_preview_and_change(api: ApiUser, leader: ApiUser, admin: ApiUser, cast: Cast, pool,
                                                client: Client) -> None:
    pid = await new_project(cast, CALENDAR_DUE)
    ok(await api.http.put(f"/projects/{pid}/reminder-policy",
                          json={"before_working_days": [1], "overdue_every_days": None, "escalation": []}))
    calendar = ok(await api.http.get("/calendar"))
    assert calendar["name"] == ALWAYS_OPEN
    assert calendar["covered_years"] == list(range(2024, 2031))
    start = calendar["version"]
    assert [v["version"] for v in calendar["versions"]] == list(range(start, 0, -1))
    assert (calendar["versions"][-1]["note"], calendar["versions"][-1]["created_by"]) == (
        "every day a working day", "tests")
    year = ok(await api.http.get(f"/calendar/years/{YEAR}"))
    assert (year["year"], year["version"], year["official"], year["holidays"]) == (YEAR, start, True, [])
    assert len(year["workdays"]) == 104  # 2030: 52 Saturdays and 52 Sundays, all worked
    assert {date.fromisoformat(d).weekday() for d in year["workdays"]} == {5, 6}

    before = await notices_of(api, pid)
    assert schedule(before) == plan("m1", ("before_1", "before", date(2030, 6, 11), "liaison_officer"),
                                    ("due", "due", CALENDAR_DUE, "liaison_officer"))
    body = {"expected_version": start, "holidays": [d.isoformat() for d in HOLIDAYS],
            "workdays": [WORKDAY.isoformat()], "note": "Dragon Boat Festival 2030 (test data)"}
    async with pool.acquire() as conn:
        original = await current_calendar(conn, ALWAYS_OPEN)
    try:
        preview = ok(await api.http.post(f"/calendar/years/{YEAR}/preview", json=body))
        assert (preview["current_version"], preview["new_version"]) == (start, start + 1)
        # The day before the due date is now a holiday, and so is the Monday; Sunday is off again
        # (the year's worked weekends are replaced), the Saturday is worked.
        mine = [m for m in preview["moves"] if m["project_id"] == pid]
        assert [(m["key"], m["milestone_id"], m["kind"], when(m["before"]), when(m["after"])) for m in mine] == [
            (f"{pid}/m1/v0/before_1", "m1", "before_1", at(date(2030, 6, 11)), at(WORKDAY))]
        # Nothing changed.
        assert await calendar_version(api) == start
        assert ok(await api.http.get(f"/calendar/years/{YEAR}")) == year
        assert await notices_of(api, pid) == before

        assert (await api.http.put(f"/calendar/years/{YEAR}", json=body)).status_code == 403
        for bad in ({**body, "holidays": ["2031-01-01"]},  # outside the year
                    {**body, "workdays": ["2030-06-12"]},  # a Wednesday cannot be an adjusted working day
                    {**body, "workdays": [HOLIDAYS[0].isoformat()]},  # a Monday, and a holiday too
                    {**body, "holidays": [WORKDAY.isoformat()]},  # both a holiday and a working day
                    {**body, "expected_version": 0},
                    {**body, "unknown": True}):
            answer = await admin.http.put(f"/calendar/years/{YEAR}", json=bad)
            assert answer.status_code == 422, answer.text
            preview_answer = await admin.http.post(f"/calendar/years/{YEAR}/preview", json=bad)
            assert preview_answer.status_code == 422, preview_answer.text
        assert await calendar_version(api) == start

        applied = ok(await admin.http.put(f"/calendar/years/{YEAR}", json=body))
        assert (applied["current_version"], applied["new_version"]) == (start + 1, start + 1)
        assert [m for m in applied["moves"] if m["project_id"] == pid] == mine

        calendar = ok(await api.http.get("/calendar"))
        assert calendar["version"] == start + 1
        newest = calendar["versions"][0]
        assert (newest["version"], newest["note"], newest["created_by"]) == (
            start + 1, "Dragon Boat Festival 2030 (test data)", await name_of(pool, admin.user_id))
        year_now = ok(await api.http.get(f"/calendar/years/{YEAR}"))
        assert (year_now["version"], year_now["holidays"], year_now["workdays"]) == (
            start + 1, [d.isoformat() for d in HOLIDAYS], [WORKDAY.isoformat()])

        after = await notices_of(api, pid)
        assert schedule(after) == plan("m1", ("before_1", "before", WORKDAY, "liaison_officer"),
                                       ("due", "due", CALENDAR_DUE, "liaison_officer"))
        assert {(n["calendar_name"], n["calendar_version"]) for n in after} == {(ALWAYS_OPEN, start + 1)}

        # Someone else's preview was made against the old version.
        stale = await admin.http.put(f"/calendar/years/{YEAR}", json=body)
        assert stale.status_code == 409, stale.text
        assert (await admin.http.post(f"/calendar/years/{YEAR}/preview", json=body)).status_code == 409
        assert await calendar_version(api) == start + 1

        events = await pool.fetch("SELECT actor_id, entity_id, after, comment FROM audit_events "
                                  "WHERE action = 'calendar.year_set' AND entity_id = $1",
                                  f"{ALWAYS_OPEN} v{start + 1}")
        assert len(events) == 1
        assert events[0]["actor_id"] == admin.user_id
        assert events[0]["after"]["year"] == YEAR
        assert events[0]["after"]["holidays"] == [d.isoformat() for d in HOLIDAYS]
        assert events[0]["after"]["moved_notices"] == len(applied["moves"])
    finally:
        await put_back(pool, client, original, YEAR)
    restored = ok(await api.http.get(f"/calendar/years/{YEAR}"))
    assert (restored["holidays"], restored["workdays"]) == (year["holidays"], year["workdays"])
    assert schedule(await notices_of(api, pid)) == schedule(before)


# ---------------------------------------------------------------- deliveries


async def test_a_milestone_due_today_is_delivered_once_with_its_provenance(app, api: ApiUser, cast: Cast, pool,
                                                                           client: Client,
                                                                           mail_sink: MailSink) -> None:
    address = f"wu-{new_id()}@mianyang.gov.cn"
    officer = await make_user(pool, f"Officer Wu {new_id()}", "liaison_officer", address=address)
    due = today()
    pid = await new_project(cast, due, due + timedelta(days=60), officer=officer.display_name)
    key = f"{pid}/m1/v0/due"

    async def both_sent() -> list[dict[str, Any]] | None:
        found = [d for d in await deliveries_of(api, pid) if d["notice_key"] == key]
        return found if {(d["channel"], d["status"]) for d in found} == {("inbox", "sent"), ("email", "sent")} \
            else None

    deliveries = await eventually(both_sent, timeout=30)
    inbox = next(d for d in deliveries if d["channel"] == "inbox")
    assert inbox["delivery_id"] == f"{key}/{officer.id}/inbox"
    assert (inbox["milestone_id"], inbox["recipient_role"]) == ("m1", "liaison_officer")
    assert (inbox["recipient_id"], inbox["recipient_name"]) == (officer.id, officer.display_name)
    assert (inbox["attempts"], inbox["last_error"]) == (1, None)
    assert when(inbox["planned_for"]) == at(due)
    assert when(inbox["scheduled_for"]) >= at(due)
    assert when(inbox["delivered_at"]) >= when(inbox["dispatched_at"]) - timedelta(seconds=5)
    notice = inbox["notice"]  # why did I get this
    assert (notice["key"], notice["kind"], notice["rule"], notice["rule_text"]) == (
        key, "due", "due", "on the due date")
    assert (notice["policy_id"], notice["policy_version"]) == ("default", 1)
    assert (notice["calendar_name"], notice["calendar_version"]) == (ALWAYS_OPEN, await calendar_version(api))
    assert (notice["due_date"], notice["due_version"]) == (due.isoformat(), 0)
    mail = next(d for d in deliveries if d["channel"] == "email")
    assert mail["notice"] == notice
    assert mail["message_id"]

    # Nothing else was owed: the notices before today came before the project existed.
    assert {d["notice_key"] for d in await deliveries_of(api, pid)} == {key}
    remaining = await notices_of(api, pid)
    assert key not in {n["key"] for n in remaining}
    assert schedule(remaining)[:2] == plan(
        "m1", ("escalation_department_leader", "escalation", due + timedelta(days=3), "department_leader"),
        ("overdue_7", "overdue", due + timedelta(days=7), "liaison_officer"))

    async with as_user(app, pool, officer) as officer_api:
        page = ok(await officer_api.http.get("/inbox"))
    assert page["unread_count"] == 1
    (message,) = page["items"]
    assert (message["id"], message["kind"], message["project_id"], message["notice_key"]) == (
        inbox["delivery_id"], "notice", pid, key)
    received = [email.message_from_bytes(m) for m in list(mail_sink.messages)]
    assert len([m for m in received if address in str(m["To"])]) == 1

    # A settings signal makes the workflow recompute: what was sent is not sent again.
    assert await tell_projects(client, [pid]) == 1
    await asyncio.sleep(2)
    counts = await pool.fetch(
        "SELECT notice_key, recipient_id, channel, count(*) AS n FROM notice_deliveries WHERE project_id = $1 "
        "GROUP BY notice_key, recipient_id, channel", pid)
    assert sorted((r["channel"], r["n"]) for r in counts) == [("email", 1), ("inbox", 1)]
    assert await pool.fetchval("SELECT count(*) FROM inbox_messages WHERE notice_key = $1", key) == 1
    audited = await pool.fetch("SELECT entity_id FROM audit_events WHERE action = 'notice.delivered' "
                               "AND project_id = $1", pid)
    assert sorted(e["entity_id"] for e in audited) == sorted(d["delivery_id"] for d in deliveries)
