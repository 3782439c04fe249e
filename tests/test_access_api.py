"""The access rules (domain/access.py) over HTTP: who sees which record, who may change it.

Another department's record answers 404 exactly like one that does not exist; a visible
record the user may not change answers 403; review steps are decided by a reviewer
(legal steps) or a leader over the cooperation's department, never by the agreement's
authors. Every refusal changes nothing; a refused write is audited as refused.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
from temporalio.client import Client

from db.users import issue_token
from domain.records import cooperation_workflow_id
from tests.conftest import API_DEPARTMENT, new_id, user_client
from tests.test_api_support import (
    REVIEW_DESK,
    Coop,
    audit_count,
    cooperation_body,
    framework_body,
    in_delivery,
    investment_body,
    ok,
    open_cooperation,
    world,
)
from workflows.cooperation import CooperationWorkflow


def answer(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, \
        f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
    detail = response.json()["detail"]
    for word in words:
        assert word in detail, f"{word!r} not in {detail!r}"
    return detail


async def workflow_seq(client: Client, cooperation_id: str) -> int:
    handle = client.get_workflow_handle(cooperation_workflow_id(cooperation_id))
    return (await handle.query(CooperationWorkflow.state)).seq


async def snapshot(pool: asyncpg.Pool, client: Client, coop: Coop) -> dict[str, Any]:
    """The cooperation (read by its own liaison officer), its projects, workflow version and accepted actions."""
    return {"detail": ok(await coop.http.get(coop.path)),
            "projects": ok(await coop.http.get("/projects", params={"cooperation_id": coop.id})),
            "seq": await workflow_seq(client, coop.id), "succeeded": await audit_count(pool, coop.id)}


async def add_departments(pool: asyncpg.Pool, *tree: tuple[str, str | None]) -> None:
    """(name, parent) pairs, parents first."""
    for name, parent in tree:
        await pool.execute("INSERT INTO departments (name, parent, created_by) VALUES ($1, $2, 'tests')",
                           name, parent)


def listed(page: dict[str, Any] | list[dict[str, Any]]) -> set[str]:
    items = page["items"] if isinstance(page, dict) else page
    return {i["id"] for i in items}


# ---------------------------------------------------------------- (a) separation of duties


async def test_an_author_who_is_a_reviewer_cannot_decide_the_legal_step(app, api, pool, client: Client) -> None:
    async with (user_client(app, pool, ["liaison_officer", "reviewer"], API_DEPARTMENT, "Drafter-Counsel") as drafter,
                user_client(app, pool, ["liaison_officer", "reviewer"], API_DEPARTMENT, "Editor-Counsel") as editor):
        coop = await open_cooperation(drafter.http)
        fid = await coop.draft(framework_body(coop.w))
        ok(await editor.http.patch(f"{coop.path}/agreements/{fid}", json={"title": "Revised by a colleague"}))
        await coop.post(f"/agreements/{fid}/submit")
        before = await snapshot(pool, client, coop)
        refused_before = await audit_count(pool, coop.id, "refused")

        legal = f"{coop.path}/agreements/{fid}/review-steps/legal_review"
        details = [
            # The API's first line lets a reviewer through (it does not know the agreement's authors);
            # the workflow's second line knows them and answers 403.
            answer(await drafter.http.post(f"{legal}/approve", json={"comment": "my own"}), 403, "drafted or edited"),
            answer(await drafter.http.post(f"{legal}/reject", json={"comment": "my own"}), 403, "drafted or edited"),
            answer(await editor.http.post(f"{legal}/approve", json={"comment": "I edited it"}), 403,
                   "drafted or edited"),
        ]
        assert await snapshot(pool, client, coop) == before, "a refused decision changed something"
        assert before["detail"]["agreements"][0]["status"] == "in_review"

        rows = await pool.fetch(
            "SELECT actor_id, entity_id, outcome, error, after->>'status' AS status FROM audit_events "
            "WHERE cooperation_id = $1 AND outcome <> 'succeeded' ORDER BY seq", coop.id)
        assert len(rows) == refused_before + 3
        assert [(r["actor_id"], r["entity_id"], r["outcome"], r["status"], r["error"]) for r in rows[-3:]] == [
            (drafter.user_id, fid, "refused", "403", details[0]),
            (drafter.user_id, fid, "refused", "403", details[1]),
            (editor.user_id, fid, "refused", "403", details[2]),
        ]

        # A reviewer who had no hand in the agreement decides it.
        state = await coop.decide(fid, "legal_review")
        assert [s["status"] for s in state["agreements"][0]["review_steps"]] == ["approved", "pending"]


# ---------------------------------------------------------------- (b) another department's records


async def test_another_departments_officer_sees_nothing_of_it(app, api, pool, client: Client) -> None:
    coop = await in_delivery(api.http, projects=1)
    pid = coop.project_ids[0]
    elsewhere = f"Tourism Bureau {new_id()}"
    async with user_client(app, pool, ["liaison_officer"], elsewhere, "Officer Elsewhere") as outsider:
        http = outsider.http
        before = await snapshot(pool, client, coop)
        ghost = f"ghost{new_id()}"
        # Reads: exactly the answer a missing record gets.
        for path in ("", "/audit", f"/agreements/{coop.investment_id}"):
            assert (await http.get(f"/cooperations/{ghost}{path}")).status_code == 404
            answer(await http.get(f"{coop.path}{path}"), 404, "not found")
        assert answer(await http.get(coop.path), 404) == f"cooperation {coop.id} not found"
        assert answer(await http.get(f"/projects/{pid}"), 404) == f"project {pid} not found"
        # Writes: 404 too, never 403 (ids cannot be probed).
        for path, body in [("/negotiation-events", {"kind": "meeting", "occurred_on": "2024-01-02"}),
                           ("/agreements", framework_body(coop.w)),
                           ("/terminate", {"reason": "not mine"})]:
            answer(await http.post(coop.path + path, json=body), 404, "not found")
        for action, body in [("suspend", {"reason": "x"}),
                             ("investments", {"received_on": "2024-07-01", "amount": "1.00", "source_note": "x"}),
                             ("milestones", {"name": "x", "due_date": "2030-01-01"})]:
            answer(await http.post(f"/projects/{pid}/{action}", json=body), 404, "not found")
        # Lists: never there. (The cooperation's own officer does see it: the filter is not empty by itself.)
        officer = {"liaison_officer": f"Officer Wang {coop.w.suffix}"}
        assert listed(ok(await http.get("/cooperations", params=officer))) == set()
        assert listed(ok(await api.http.get("/cooperations", params=officer))) == {coop.id}
        assert coop.id not in listed(ok(await http.get("/cooperations", params={"limit": 200})))
        assert pid not in listed(ok(await http.get("/projects")))
        assert ok(await http.get("/projects", params={"cooperation_id": coop.id})) == []
        assert listed(ok(await api.http.get("/projects", params={"cooperation_id": coop.id}))) == {pid}
        assert await snapshot(pool, client, coop) == before, "an outsider's attempt changed something"

        # Their own cooperations are for their own department, which is also the default.
        w = await world(http)
        answer(await http.post("/cooperations", json=cooperation_body(w)), 403, "own department")
        mine = ok(await http.post("/cooperations", json=cooperation_body(w, department=None)), 201)
        assert mine["department"] == elsewhere
        assert listed(ok(await http.get("/cooperations", params={"liaison_officer": f"Officer Wang {w.suffix}"}))) \
            == {mine["cooperation_id"]}


# ---------------------------------------------------------------- (c) leaders read down the tree


async def test_a_parent_departments_leader_sees_but_does_not_edit(app, api, pool, client: Client) -> None:
    commission, office, sibling = (f"Commerce Commission {new_id()}", f"Investment Office {new_id()}",
                                   f"Trade Office {new_id()}")
    await add_departments(pool, (commission, None), (office, commission), (sibling, commission))
    async with (user_client(app, pool, ["liaison_officer"], office, "Officer Office") as officer,
                user_client(app, pool, ["leader"], commission, "Director Commission") as chief,
                user_client(app, pool, ["leader"], sibling, "Director Sibling") as neighbour):
        coop = await open_cooperation(officer.http, department=office)
        fid = await coop.draft(framework_body(coop.w))
        await coop.post(f"/agreements/{fid}/submit")
        before = await snapshot(pool, client, coop)

        # The commission's leader reads the office's cooperation, its agreement and its audit trail.
        assert ok(await chief.http.get(coop.path))["id"] == coop.id
        assert ok(await chief.http.get(f"{coop.path}/agreements/{fid}"))["status"] == "in_review"
        assert ok(await chief.http.get(f"{coop.path}/audit"))
        assert coop.id in listed(ok(await chief.http.get("/cooperations", params={"limit": 200})))
        # ...but changes nothing of it: that is the liaison officer's.
        for method, path, body in [
            ("POST", "/negotiation-events", {"kind": "meeting", "occurred_on": "2024-01-02"}),
            ("PATCH", f"/agreements/{fid}", {"title": "The director's title"}),
            ("POST", "/terminate", {"reason": "the director says so"}),
        ]:
            answer(await chief.http.request(method, coop.path + path, json=body), 403, "liaison officer")
        # A leader of a sibling department does not see it at all; nor does the API department's leader.
        answer(await neighbour.http.get(coop.path), 404, "not found")
        answer(await REVIEW_DESK["leadership_approval"].get(coop.path), 404, "not found")
        assert await snapshot(pool, client, coop) == before, "a leader's refused edit changed something"

        # Its leadership approval is the commission leader's to decide (the office is below the commission).
        await coop.decide(fid, "legal_review")
        answer(await neighbour.http.post(f"{coop.path}/agreements/{fid}/review-steps/leadership_approval/approve"),
               404, "not found")
        state = await coop.decide(fid, "leadership_approval", by=chief.http)
        assert state["agreements"][0]["status"] == "approved"


# ---------------------------------------------------------------- (d) auditors and admins


async def test_an_auditor_reads_everything_and_changes_nothing(app, api, pool, client: Client) -> None:
    coop = await in_delivery(api.http, projects=1)
    pid = coop.project_ids[0]
    review = await coop.draft(investment_body(coop.w, title="Under review"))
    await coop.post(f"/agreements/{review}/submit")
    async with user_client(app, pool, ["auditor"], None, "Auditor Only") as auditor:
        http = auditor.http
        assert ok(await http.get(coop.path))["id"] == coop.id
        assert ok(await http.get(f"/projects/{pid}"))["id"] == pid
        assert coop.id in listed(ok(await http.get("/cooperations", params={"liaison_officer":
                                                                             f"Officer Wang {coop.w.suffix}"})))
        assert listed(ok(await http.get("/projects", params={"cooperation_id": coop.id}))) == {pid}
        assert ok(await http.get("/audit", params={"cooperation_id": coop.id}))["items"]
        before = await snapshot(pool, client, coop)
        answer(await http.post(f"{coop.path}/negotiation-events", json={"kind": "note", "occurred_on": "2024-01-02"}),
               403, "liaison officer")
        answer(await http.post(f"{coop.path}/terminate", json={"reason": "audit finding"}), 403)
        answer(await http.post(f"{coop.path}/agreements/{review}/review-steps/legal_review/approve"), 403, "reviewer")
        answer(await http.post(f"/projects/{pid}/suspend", json={"reason": "audit finding"}), 403)
        answer(await http.post("/cooperations", json=cooperation_body(coop.w)), 403, "liaison officer")
        assert await snapshot(pool, client, coop) == before, "an auditor's refused write changed something"


async def test_an_admin_sees_no_cooperation_and_cannot_open_one(app, api, pool, client: Client) -> None:
    coop = await in_delivery(api.http, projects=1)
    pid = coop.project_ids[0]
    async with user_client(app, pool, ["admin"], None, "Admin Only") as admin:
        http = admin.http
        answer(await http.get(coop.path), 404, "not found")
        answer(await http.get(f"/projects/{pid}"), 404, "not found")
        assert listed(ok(await http.get("/cooperations", params={"limit": 200}))) == set()
        assert pid not in listed(ok(await http.get("/projects")))
        answer(await http.get("/audit", params={"cooperation_id": coop.id}), 403, "auditor")
        before = await snapshot(pool, client, coop)
        answer(await http.post(f"{coop.path}/negotiation-events", json={"kind": "note", "occurred_on": "2024-01-02"}),
               404, "not found")
        answer(await http.post(f"/projects/{pid}/suspend", json={"reason": "admin"}), 404, "not found")
        answer(await http.post("/cooperations", json=cooperation_body(coop.w)), 403, "liaison officer")
        answer(await http.post("/cooperations", json=cooperation_body(coop.w, department=None)), 403)
        assert await snapshot(pool, client, coop) == before, "an admin's refused write changed something"


# ---------------------------------------------------------------- (e) read-only tokens


async def test_a_read_only_token_reads_but_cannot_write(app, api, pool, client: Client) -> None:
    coop = await in_delivery(api.http, projects=1)
    pid = coop.project_ids[0]
    async with pool.acquire() as conn:
        token = await issue_token(conn, api.user_id, "tests: read only", scope="read")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord.test/api/v1",
                                 headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        assert ok(await http.get(coop.path))["id"] == coop.id  # same user, same view
        assert ok(await http.get(f"/projects/{pid}"))["id"] == pid
        before = await snapshot(pool, client, coop)
        refused_before = await audit_count(pool, coop.id, "refused")
        for method, path, body in [
            ("POST", f"{coop.path}/negotiation-events", {"kind": "note", "occurred_on": "2024-01-02"}),
            ("PATCH", f"{coop.path}/agreements/{coop.framework_id}", {"title": "x"}),
            ("POST", f"{coop.path}/terminate", {"reason": "read-only"}),
            ("POST", f"/projects/{pid}/suspend", {"reason": "read-only"}),
            ("POST", "/cooperations", cooperation_body(coop.w)),
        ]:
            answer(await http.request(method, path, json=body), 403, "read-only")
        assert await snapshot(pool, client, coop) == before, "a read-only token changed something"
        assert await audit_count(pool, coop.id, "refused") == refused_before + 3  # the cooperation's three
        # The same user's read-write token still writes.
        ok(await api.http.post(f"{coop.path}/negotiation-events", json={"kind": "note", "occurred_on": "2024-01-02"}))
