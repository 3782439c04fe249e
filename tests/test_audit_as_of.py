"""State as of an instant, rebuilt from the audit trail.

A seed-like lifecycle is driven through HTTP. After each step the test notes the
database clock (`clock_timestamp()`, after the answer) and the state the action
answered with. At the end, `/cooperations/{id}/as-of` and `/projects/{id}/as-of` at
every noted instant must give back the state noted then: the as-of answer is the
latest state at or before the instant, whatever happened afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from tests.conftest import new_id
from tests.test_api_support import REVIEW_DESK, eventually, framework_body, investment_body, ok, world
from tests.test_audit_support import db_now

BEIJING = timezone(timedelta(hours=8))


@dataclass
class Moment:
    label: str
    at: datetime
    cooperation: dict[str, Any] | None  # the cooperation's state then (None: not yet created)
    project: dict[str, Any] | None  # the project's state then (None: not yet created)


@dataclass
class Timeline:
    pool: asyncpg.Pool
    moments: list[Moment] = field(default_factory=list)
    cooperation: dict[str, Any] | None = None
    project: dict[str, Any] | None = None
    cooperation_id: str = ""
    project_id: str = ""
    move_event: dict[str, Any] | None = None

    async def note(self, label: str, cooperation: dict[str, Any] | None = None,
                   project: dict[str, Any] | None = None) -> None:
        if cooperation is not None:
            self.cooperation = cooperation
        if project is not None:
            self.project = project
        self.moments.append(Moment(label, await db_now(self.pool), self.cooperation, self.project))


def cooperation_keys(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "stage": state["stage"],
        "termination_reason": state["termination_reason"],
        "negotiation": [e["kind"] for e in state["negotiation"]],
        "agreements": [(a["agreement_id"], a["kind"], a["status"], a["signed_on"], a["revision"],
                        [(s["organization_id"], s["signatory_name"], s["signed_on"]) for s in a["signatures"]],
                        [(r["name"], r["status"]) for r in a["review_steps"]])
                       for a in state["agreements"]],
        "projects": [(p["project_id"], p["status"]) for p in state["projects"]],
        "seq": state["seq"],
    }


def project_keys(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": state["status"],
        "status_reason": state["status_reason"],
        "milestones": [(m["milestone_id"], m["due_date"], m["status"], m["completed_on"], len(m["moves"]))
                       for m in state["milestones"]],
        "realized_investment": state["realized_investment"],
        "committed_investment": state["committed_investment"],
        "investments": [(i["received_on"], i["amount"]) for i in state["investments"]],
        "seq": state["seq"],
    }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def timeline(api, pool: asyncpg.Pool) -> AsyncIterator[Timeline]:
    http = api.http
    t = Timeline(pool)
    w = await world(http)
    await t.note("before the cooperation")

    coop = ok(await http.post("/cooperations", json={
        "title": f"与博奥中恒战略合作 As-of {w.suffix}", "lead_organization_id": w.gov_id,
        "partner_organization_id": w.company_id, "liaison_officer": "Officer Wang",
        "areas": ["知识产权"], "started_on": "2017-09-01", "target_signing_date": "2017-12-01"}), 201)
    t.cooperation_id = cid = coop["cooperation_id"]
    base = f"/cooperations/{cid}"
    await t.note("created", coop)
    await t.note("forum", ok(await http.post(f"{base}/negotiation-events", json={
        "kind": "forum", "occurred_on": "2017-09-08", "place": "Mianyang, Fifth Sci-Tech Expo"})))
    await t.note("inspection", ok(await http.post(f"{base}/negotiation-events", json={
        "kind": "inspection_visit", "occurred_on": "2017-12-01", "place": "Guangzhou"})))

    async def sign_through(kind: str, body: dict[str, Any], parties: list[str], signed_on: str) -> str:
        state = ok(await http.post(f"{base}/agreements", json=body))
        aid = next(a["agreement_id"] for a in state["agreements"] if a["kind"] == kind)
        await t.note(f"{kind} drafted", state)
        await t.note(f"{kind} submitted", ok(await http.post(f"{base}/agreements/{aid}/submit")))
        for step in ("legal_review", "leadership_approval"):  # decided by the review desk, not the drafter
            await t.note(f"{kind} {step}", ok(await REVIEW_DESK[step].post(
                f"{base}/agreements/{aid}/review-steps/{step}/approve", json={"comment": "同意"})))
        for org in parties:
            await t.note(f"{kind} signed by {org}", ok(await http.post(
                f"{base}/agreements/{aid}/signatures", json={"organization_id": org, "signed_on": signed_on})))
        return aid

    await sign_through("framework", framework_body(w), [w.gov_id, w.company_id], "2017-12-01")
    assert t.cooperation["stage"] == "framework_signed"
    iid = await sign_through("investment", investment_body(w), [w.park_id, w.company_id], "2017-12-01")
    assert t.cooperation["stage"] == "in_delivery"

    state = ok(await http.post(f"{base}/projects", json={
        "agreement_id": iid, "title": "博奥中恒西南区域总部 Southwestern Regional Headquarters",
        "site": "Mianyang High-tech Zone 绵阳高新区", "committed_investment": "50000000.00",
        "responsible_department": "Management Committee", "responsible_officer": "Project officer",
        "milestones": [{"name": "Company registration 公司注册", "due_date": "2017-12-31"},
                       {"name": "Site secured 项目选址", "due_date": "2018-03-01"},
                       {"name": "Opening 开业", "due_date": "2019-06-30"}]}), 201)
    t.project_id = pid = state["projects"][0]["project_id"]
    # No project event yet: its state as created (the parent's project.created event holds it).
    created = {
        "status": "planned", "status_reason": None,
        "milestones": [("m1", "2017-12-31", "open", None, 0), ("m2", "2018-03-01", "open", None, 0),
                       ("m3", "2019-06-30", "open", None, 0)],
        "realized_investment": "0.00", "committed_investment": "50000000.00", "investments": [], "seq": 0,
    }
    await t.note("project created", state, created)

    project = f"/projects/{pid}"
    await t.note("m2 moved", project=ok(await http.post(f"{project}/milestones/m2/move", json={
        "new_due_date": "2018-05-15", "reason": "土地证延迟 land title delayed"})))
    t.move_event = dict(await pool.fetchrow(
        "SELECT recorded_at, before, after FROM audit_events WHERE workflow_id = $1 AND action = 'milestone.moved'",
        f"project-{pid}"))
    await t.note("m1 completed", project=ok(await http.post(f"{project}/milestones/m1/complete", json={
        "completed_on": "2017-12-28", "evidence": "Business licence"})))
    await t.note("first tranche", project=ok(await http.post(f"{project}/investments", json={
        "received_on": "2018-01-15", "amount": "5000000.00", "source_note": "First tranche"})))
    await t.note("suspended", project=ok(await http.post(f"{project}/suspend", json={"reason": "用地纠纷"})))
    await t.note("resumed", project=ok(await http.post(f"{project}/resume")))
    await t.note("second tranche", project=ok(await http.post(f"{project}/investments", json={
        "received_on": "2018-03-01", "amount": "2500000.50", "source_note": "Second tranche"})))
    await t.note("m2 moved again", project=ok(await http.post(f"{project}/milestones/m2/move", json={
        "new_due_date": "2018-06-30", "reason": "second delay"})))

    # Termination: the project is cancelled by the workflow a moment later.
    terminated = ok(await http.post(f"{base}/terminate", json={"reason": "公司战略调整"}))

    async def cancelled() -> dict[str, Any] | None:
        row = await pool.fetchrow("SELECT state FROM audit_events WHERE workflow_id = $1 "
                                  "AND action = 'project.cancelled'", f"project-{pid}")
        return row["state"] if row else None

    await t.note("terminated and cancelled", terminated, await eventually(cancelled, timeout=20))
    yield t


async def as_of(http, kind: str, record_id: str, at: datetime) -> tuple[int, Any]:
    response = await http.get(f"/{kind}/{record_id}/as-of", params={"at": at.isoformat()})
    return response.status_code, response.json()


async def test_every_moment_is_given_back_as_it_was(api, timeline: Timeline) -> None:
    assert len(timeline.moments) >= 25
    for moment in timeline.moments:
        status, answer = await as_of(api.http, "cooperations", timeline.cooperation_id, moment.at)
        if moment.cooperation is None:
            assert status == 404, (moment.label, answer)
        else:
            assert status == 200, (moment.label, answer)
            assert cooperation_keys(answer) == cooperation_keys(moment.cooperation), moment.label
            assert answer == moment.cooperation, moment.label

        status, answer = await as_of(api.http, "projects", timeline.project_id, moment.at)
        if moment.project is None:
            assert status == 404, (moment.label, answer)
            assert answer["detail"].startswith(f"project {timeline.project_id} at ")
        else:
            assert status == 200, (moment.label, answer)
            if "project_id" not in moment.project:  # as created: only its key fields were noted
                assert project_keys(answer) == moment.project, moment.label
            else:
                assert project_keys(answer) == project_keys(moment.project), moment.label
                assert answer == moment.project, moment.label


async def test_key_moments(api, timeline: Timeline) -> None:
    by_label = {m.label: m for m in timeline.moments}
    get = api.http

    _, c = await as_of(get, "cooperations", timeline.cooperation_id, by_label["framework submitted"].at)
    framework = c["agreements"][0]
    assert (c["stage"], framework["status"], framework["signatures"]) == ("negotiating", "in_review", [])
    _, c = await as_of(get, "cooperations", timeline.cooperation_id, by_label["investment submitted"].at)
    assert c["stage"] == "framework_signed" and len(c["agreements"][0]["signatures"]) == 2
    _, c = await as_of(get, "cooperations", timeline.cooperation_id, by_label["project created"].at)
    assert c["stage"] == "in_delivery" and [p["status"] for p in c["projects"]] == ["planned"]

    _, p = await as_of(get, "projects", timeline.project_id, by_label["project created"].at)
    assert [m["due_date"] for m in p["milestones"]] == ["2017-12-31", "2018-03-01", "2019-06-30"]
    _, p = await as_of(get, "projects", timeline.project_id, by_label["m2 moved"].at)
    assert p["milestones"][1]["due_date"] == "2018-05-15" and p["milestones"][1]["moves"][0]["reason"] == \
        "土地证延迟 land title delayed"
    _, p = await as_of(get, "projects", timeline.project_id, by_label["suspended"].at)
    assert (p["status"], p["status_reason"], p["realized_investment"]) == ("suspended", "用地纠纷", "5000000.00")
    _, p = await as_of(get, "projects", timeline.project_id, by_label["m2 moved again"].at)
    assert p["milestones"][1]["due_date"] == "2018-06-30" and p["realized_investment"] == "7500000.50"
    _, p = await as_of(get, "projects", timeline.project_id, by_label["terminated and cancelled"].at)
    assert (p["status"], p["status_reason"]) == ("cancelled", "cooperation terminated: 公司战略调整")


async def test_the_instant_of_an_event_is_included_a_microsecond_before_is_not(api, timeline: Timeline) -> None:
    moved = timeline.move_event
    assert moved is not None and moved["before"] == {"due_date": "2018-03-01"}
    at = moved["recorded_at"]
    _, p = await as_of(api.http, "projects", timeline.project_id, at)
    assert p["milestones"][1]["due_date"] == "2018-05-15"
    _, p = await as_of(api.http, "projects", timeline.project_id, at - timedelta(microseconds=1))
    assert p["milestones"][1]["due_date"] == "2018-03-01"


async def test_any_time_zone_names_the_same_instant(api, timeline: Timeline) -> None:
    west = timezone(timedelta(hours=-5, minutes=-30))
    for moment in timeline.moments[1::4]:
        for kind, record_id in (("cooperations", timeline.cooperation_id), ("projects", timeline.project_id)):
            answers = [await as_of(api.http, kind, record_id, moment.at.astimezone(tz))
                       for tz in (timezone.utc, BEIJING, west)]
            assert len({status for status, _ in answers}) == 1, (moment.label, kind)
            if answers[0][0] == 200:  # (a 404 names the instant as it was asked)
                assert answers[0][1] == answers[1][1] == answers[2][1], (moment.label, kind)


async def test_before_anything_and_unknown_records_are_404(api, timeline: Timeline) -> None:
    long_ago = datetime(2017, 1, 1, tzinfo=BEIJING)
    assert (await as_of(api.http, "cooperations", timeline.cooperation_id, long_ago))[0] == 404
    assert (await as_of(api.http, "projects", timeline.project_id, long_ago))[0] == 404
    now = datetime.now(timezone.utc)
    assert (await as_of(api.http, "cooperations", new_id("nobody-"), now))[0] == 404
    assert (await as_of(api.http, "projects", new_id("nobody-"), now))[0] == 404


@pytest.mark.parametrize("at", ["2026-06-30T00:00:00", "2026-06-30", "2026-06-30 08:00", "yesterday", "",
                                "2026-13-01T00:00:00+08:00"])
async def test_as_of_needs_an_instant_with_a_time_zone(api, timeline: Timeline, at: str) -> None:
    for kind, record_id in (("cooperations", timeline.cooperation_id), ("projects", timeline.project_id)):
        response = await api.http.get(f"/{kind}/{record_id}/as-of", params={"at": at})
        assert response.status_code == 422, (kind, at, response.text)
        assert response.json()["detail"][0]["loc"] == ["query", "at"]
    missing = await api.http.get(f"/cooperations/{timeline.cooperation_id}/as-of")
    assert missing.status_code == 422
