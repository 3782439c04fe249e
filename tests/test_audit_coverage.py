
"""Every action through the HTTP API leaves exactly one well-formed audit event.

Each request carries a User-Agent no other request sends and (for writes) its own
Idempotency-Key, from which the request id is known: the events one request caused
are exactly those with its user agent. Accepted actions are recorded by the
workflow's write (or, for organizations and people, by the route); refused attempts
by `AttemptAuditMiddleware`; reads of the audit trail by the audit routes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

import asyncpg
import httpx
from temporalio.service import RPCError, RPCStatusCode

from db.audit_chain import event_hash
from db.users import hash_token
from tests.conftest import API_DEPARTMENT, AUDIT_KEY, LEGAL_DEPARTMENT, TASK_QUEUE, ApiUser, new_id, user_client
from tests.test_api_support import eventually, ok, world
from tests.test_audit_support import agent, error_text, events_by_agent, idempotent_request_id

USER_NAME, USER_ROLE = "Liaison Officer Test", "liaison_officer"
# A refused or failed attempt is named after its route (`api:<METHOD> <route path>`).
NEGOTIATION = "api:POST /cooperations/{cooperation_id}/negotiation-events"


async def check_linked(pool: asyncpg.Pool, event: dict[str, Any]) -> None:
    """The event's hash covers its content and it links to the event before it."""
    assert event_hash(event) == bytes(event["hash"])
    if event["seq"] > 1:
        prev = await pool.fetchval("SELECT hash FROM audit_events WHERE seq = $1", event["seq"] - 1)
        assert bytes(event["prev_hash"]) == bytes(prev)


@dataclass
class Staff:
    """Who sends a request, and what its events must say of them."""

    user: ApiUser
    name: str
    role: str
    department: str | None


@dataclass
class Trail:
    """Drives the API and checks the one event each request leaves."""

    api: Any
    pool: asyncpg.Pool
    workflow_seq: dict[str, int] = field(default_factory=dict)  # workflow id -> last event_seq seen
    events: list[dict[str, Any]] = field(default_factory=list)  # accepted staff actions
    others: list[dict[str, Any]] = field(default_factory=list)  # system follow-ups and refused attempts

    async def act(self, method: str, path: str, body: Any = None, *, action: str, entity: Any, status: int = 200,
                  workflow: Any = None, cooperation_id: Any = None, project_id: Any = None,
                  by: Staff | None = None) -> tuple[Any, dict[str, Any]]:
        """Send one write, by the liaison officer of `api` unless `by` someone else (a review decision);
        `entity`, `workflow`, `cooperation_id`, `project_id` may be functions of the answer."""
        by = by or Staff(self.api, USER_NAME, USER_ROLE, API_DEPARTMENT)
        ua, key = agent(), f"audit-coverage-{uuid.uuid4().hex}"
        response = await by.user.http.request(method, path, json=body,
                                              headers={"User-Agent": ua, "Idempotency-Key": key})
        answer = ok(response, status)
        found = await events_by_agent(self.pool, ua)
        assert [e["action"] for e in found] == [action], f"{method} {path}: {found}"
        event = found[0]
        entity, workflow, cooperation_id, project_id = (
            v(answer) if callable(v) else v for v in (entity, workflow, cooperation_id, project_id))
        assert (event["entity_type"], event["entity_id"]) == entity
        assert event["outcome"] == "succeeded" and event["error"] is None
        assert (event["actor_id"], event["actor_name"], event["actor_role"], event["auth_method"]) == (
            by.user.user_id, by.name, by.role, "api_token")
        assert event["actor_department"] == by.department
        assert event["source_ip"] == "127.0.0.1" and event["user_agent"] == ua
        assert event["request_id"] == idempotent_request_id(by.user.user_id, key)
        assert (event["cooperation_id"], event["project_id"]) == (cooperation_id, project_id)
        assert isinstance(event["recorded_at"], datetime) and event["recorded_at"].tzinfo is not None
        assert isinstance(event["occurred_at"], datetime)
        assert isinstance(event["before"], dict) and isinstance(event["after"], dict) and event["after"]
        if workflow is None:
            assert (event["workflow_id"], event["run_id"], event["event_seq"], event["state"]) == (None,) * 4
        else:
            assert event["workflow_id"] == workflow and event["run_id"]
            assert event["event_seq"] == self.workflow_seq.get(workflow, 0) + 1
            self.workflow_seq[workflow] = event["event_seq"]
            # The state recorded with the event is the one the action answered with.
            assert event["state"] == answer
            assert event["state"]["seq"] == event["event_seq"]
        await check_linked(self.pool, event)
        self.events.append(event)
        return answer, event

    async def system_event(self, request_id: str, action: str, workflow: str) -> dict[str, Any]:
        """A follow-up the workflows record by themselves (no request, no user)."""
        async def recorded() -> list[asyncpg.Record]:
            return await self.pool.fetch("SELECT * FROM audit_events WHERE request_id = $1 AND workflow_id = $2",
                                         request_id, workflow)
        (event,) = await eventually(recorded, timeout=20)
        assert (event["action"], event["actor_id"], event["auth_method"], event["outcome"]) == (
            action, "system", "workflow", "succeeded")
        assert event["event_seq"] == self.workflow_seq.get(workflow, 0) + 1
        self.workflow_seq[workflow] = event["event_seq"]
        await check_linked(self.pool, dict(event))
        self.others.append(dict(event))
        return dict(event)

    async def refused(self, method: str, path: str, body: Any = None, *, status: int, action: str,
                      entity: tuple[str, str], headers: dict[str, str] | None = None,
                      anonymous: bool = False, idempotent: bool = True) -> dict[str, Any]:
        ua = agent()
        sent = {"User-Agent": ua, **(headers or {})}
        key = f"audit-refused-{uuid.uuid4().hex}"
        if idempotent and method in ("POST", "PATCH"):
            sent["Idempotency-Key"] = key
        response = await self.api.http.request(method, path, json=body, headers=sent)
        assert response.status_code == status, response.text
        found = await events_by_agent(self.pool, ua)
        assert len(found) == 1, f"{method} {path} -> {status}: {[e['action'] for e in found]}"
        event = found[0]
        assert (event["action"], event["outcome"]) == (action, "refused")
        assert event["error"] == error_text(response.json()["detail"])
        assert (event["entity_type"], event["entity_id"]) == entity
        assert event["after"] == {"method": method, "path": "/api/v1" + path.split("?")[0], "status": status}
        assert event["before"] == {} and event["workflow_id"] is None and event["state"] is None
        assert event["source_ip"] == "127.0.0.1" and event["user_agent"] == ua
        if anonymous:
            assert (event["actor_id"], event["actor_name"], event["actor_role"], event["auth_method"]) == (
                "anonymous", "(not authenticated)", "none", "none")
        else:
            assert (event["actor_id"], event["actor_name"], event["auth_method"]) == (
                self.api.user_id, USER_NAME, "api_token")
            if "Idempotency-Key" in sent:
                assert event["request_id"] == idempotent_request_id(self.api.user_id, key)
        await check_linked(self.pool, event)
        self.others.append(event)
        return event

    async def read(self, path: str, params: dict[str, Any], action: str) -> tuple[httpx.Response, dict[str, Any]]:
        ua = agent()
        response = await self.api.http.get(path, params=params, headers={"User-Agent": ua})
        assert response.status_code == 200, response.text
        (event,) = await events_by_agent(self.pool, ua)
        assert (event["action"], event["entity_type"], event["entity_id"], event["outcome"]) == (
            action, "audit_trail", "audit_events", "succeeded")
        assert (event["actor_id"], event["actor_name"], event["auth_method"], event["source_ip"]) == (
            self.api.user_id, USER_NAME, "api_token", "127.0.0.1")
        await check_linked(self.pool, event)
        return response, event


def agreement(state: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(a for a in state["agreements"] if a["kind"] == kind)


def milestone(state: dict[str, Any], milestone_id: str) -> dict[str, Any]:
    return next(m for m in state["milestones"] if m["milestone_id"] == milestone_id)


async def test_every_action_leaves_exactly_one_well_formed_event(app, api, pool: asyncpg.Pool) -> None:
    # Review steps are decided by a reviewer (legal review) and a leader of the cooperation's
    # department (approval), never by the liaison officer who drafted the agreement: their
    # decisions' events name them.
    async with (user_client(app, pool, ["reviewer"], LEGAL_DEPARTMENT, "Counsel Coverage") as counsel,
                user_client(app, pool, ["leader"], API_DEPARTMENT, "Director Coverage") as director):
        await _every_action(api, pool, {
            "legal_review": Staff(counsel, "Counsel Coverage", "reviewer", LEGAL_DEPARTMENT),
            "leadership_approval": Staff(director, "Director Coverage", "leader", API_DEPARTMENT)})


async def _every_action(api, pool: asyncpg.Pool, desk: dict[str, Staff]) -> None:
    t = Trail(api, pool)
    suffix = new_id()

    # ---- registry, recorded by the routes themselves
    orgs = {}
    for kind, name in [("government", f"绵阳市人民政府 Municipal Government {suffix}"),
                       ("park_committee", f"高新区管委会 Park Committee {suffix}"),
                       ("company", f"博奥中恒 Boao Zhongheng {suffix}")]:
        body = {"name": name, "kind": kind, "region": "Mianyang, Sichuan"}
        org, event = await t.act("POST", "/organizations", body, status=201, action="organization.created",
                                 entity=lambda r: ("organization", r["id"]))
        assert event["after"] == body and event["before"] == {}
        orgs[kind] = org["id"]
    gov, park, company = orgs["government"], orgs["park_committee"], orgs["company"]
    _, event = await t.act("POST", f"/organizations/{gov}/people", {"name": "刘超 Liu Chao", "title": "Mayor"},
                           status=201, action="person.created", entity=lambda r: ("person", r["id"]))
    assert event["after"] == {"organization_id": gov, "name": "刘超 Liu Chao", "title": "Mayor"}

    # ---- the cooperation, recorded by the workflow's write
    state, event = await t.act("POST", "/cooperations", {
        "title": f"与博奥中恒战略合作 {suffix}", "lead_organization_id": gov, "partner_organization_id": company,
        "liaison_officer": "招商联络员 Officer Wang", "areas": ["知识产权"], "started_on": "2024-01-10",
    }, status=201, action="cooperation.created", entity=lambda r: ("cooperation", r["cooperation_id"]),
        workflow=lambda r: f"cooperation-{r['cooperation_id']}", cooperation_id=lambda r: r["cooperation_id"])
    cid = state["cooperation_id"]
    assert event["before"] == {} and event["after"]["stage"] == "negotiating"
    base, wf = f"/cooperations/{cid}", f"cooperation-{cid}"
    on_coop = dict(workflow=wf, cooperation_id=cid)

    state, event = await t.act("POST", f"{base}/negotiation-events", {
        "kind": "inspection_visit", "occurred_on": "2024-02-01", "place": "广州 Guangzhou",
        "participants": ["Liu Chao"], "summary": "市长刘超带队考察"}, action="negotiation.recorded",
        entity=lambda r: ("negotiation_event", r["negotiation"][-1]["event_id"]), **on_coop)
    assert event["after"]["summary"] == "市长刘超带队考察"

    # ---- the framework agreement: draft, edit, submit, approve, reject, resubmit, approve, sign
    state, event = await t.act("POST", f"{base}/agreements", framework_body_for(gov, company),
                               action="agreement.drafted",
                               entity=lambda r: ("agreement", agreement(r, "framework")["agreement_id"]), **on_coop)
    fid = agreement(state, "framework")["agreement_id"]
    assert event["after"]["status"] == "draft" and event["before"] == {}
    on_framework = dict(entity=("agreement", fid), **on_coop)
    _, event = await t.act("PATCH", f"{base}/agreements/{fid}", {"title": "战略合作框架协议（修订稿）"},
                           action="agreement.edited", **on_framework)
    assert event["before"] == {"title": "战略合作框架协议 Strategic Cooperation Framework Agreement", "revision": 1}
    assert event["after"] == {"title": "战略合作框架协议（修订稿）", "revision": 2}
    _, event = await t.act("POST", f"{base}/agreements/{fid}/submit", action="agreement.submitted", **on_framework)
    assert (event["before"]["status"], event["after"]["status"]) == ("draft", "in_review")
    _, event = await t.act("POST", f"{base}/agreements/{fid}/review-steps/legal_review/approve",
                           {"comment": "合法性审查通过"}, action="agreement.review_approved",
                           by=desk["legal_review"], **on_framework)
    assert event["comment"] == "合法性审查通过" and "review_steps" in event["after"]
    _, event = await t.act("POST", f"{base}/agreements/{fid}/review-steps/leadership_approval/reject",
                           {"comment": "第三条需要修改"}, action="agreement.review_rejected",
                           by=desk["leadership_approval"], **on_framework)
    assert event["comment"] == "第三条需要修改"
    assert (event["before"]["status"], event["after"]["status"]) == ("in_review", "draft")
    await t.act("POST", f"{base}/agreements/{fid}/submit", action="agreement.submitted", **on_framework)
    for step in ("legal_review", "leadership_approval"):
        state, _ = await t.act("POST", f"{base}/agreements/{fid}/review-steps/{step}/approve",
                               action="agreement.review_approved", by=desk[step], **on_framework)
    assert agreement(state, "framework")["status"] == "approved"
    _, event = await t.act("POST", f"{base}/agreements/{fid}/signatures",
                           {"organization_id": gov, "signed_on": "2024-03-01"},
                           action="agreement.party_signed", **on_framework)
    assert event["before"]["signatures"] == [] and event["after"]["signatures"][0]["organization_id"] == gov
    state, event = await t.act("POST", f"{base}/agreements/{fid}/signatures",
                               {"organization_id": company, "signed_on": "2024-03-01"},
                               action="agreement.signed", **on_framework)
    assert (event["before"]["status"], event["after"]["status"]) == ("approved", "signed")
    assert state["stage"] == "framework_signed"

    # ---- the investment agreement
    state, _ = await t.act("POST", f"{base}/agreements", investment_body_for(park, company),
                           action="agreement.drafted",
                           entity=lambda r: ("agreement", agreement(r, "investment")["agreement_id"]), **on_coop)
    iid = agreement(state, "investment")["agreement_id"]
    on_investment = dict(entity=("agreement", iid), **on_coop)
    await t.act("POST", f"{base}/agreements/{iid}/submit", action="agreement.submitted", **on_investment)
    for step in ("legal_review", "leadership_approval"):
        await t.act("POST", f"{base}/agreements/{iid}/review-steps/{step}/approve",
                    action="agreement.review_approved", by=desk[step], **on_investment)
    await t.act("POST", f"{base}/agreements/{iid}/signatures", {"organization_id": park, "signed_on": "2024-06-15"},
                action="agreement.party_signed", **on_investment)
    state, _ = await t.act("POST", f"{base}/agreements/{iid}/signatures",
                           {"organization_id": company, "signed_on": "2024-06-15"},
                           action="agreement.signed", **on_investment)
    assert state["stage"] == "in_delivery"

    # ---- two projects; the creation event holds the whole project as created
    project_ids: list[str] = []
    for title in ("西南区域总部 Regional HQ", "知识产权研究院 IP Institute"):
        body = {"agreement_id": iid, "title": title, "committed_investment": "50000000.00",
                "responsible_department": "Park Committee", "responsible_officer": "Officer Li",
                "milestones": [{"name": "公司注册 Registration", "due_date": "2024-07-15"},
                               {"name": "Opening", "due_date": "2099-01-01"}]}
        state, event = await t.act("POST", f"{base}/projects", body, status=201, action="project.created",
                                   entity=lambda r: ("project", r["projects"][-1]["project_id"]),
                                   project_id=lambda r: r["projects"][-1]["project_id"], **on_coop)
        project_ids.append(state["projects"][-1]["project_id"])
        created = event["after"]["project"]
        assert created["committed_investment"] == "50000000.00" and len(created["milestones"]) == 2
    pa, pb = project_ids

    # ---- project work, recorded by the project workflow
    pwf = f"project-{pa}"
    on_project = dict(workflow=pwf, cooperation_id=cid, project_id=pa)
    state, event = await t.act("POST", f"/projects/{pa}/milestones",
                               {"name": "人才计划 Talent programme", "due_date": "2030-06-30"},
                               action="milestone.added",
                               entity=lambda r: ("milestone", r["milestones"][-1]["milestone_id"]), **on_project)
    assert event["event_seq"] == 1 and event["after"]["name"] == "人才计划 Talent programme"
    _, event = await t.act("POST", f"/projects/{pa}/milestones/m2/move",
                           {"new_due_date": "2098-12-01", "reason": "提前开业"}, action="milestone.moved",
                           entity=("milestone", "m2"), **on_project)
    assert (event["before"], event["after"], event["comment"]) == (
        {"due_date": "2099-01-01"}, {"due_date": "2098-12-01"}, "提前开业")
    state, event = await t.act("POST", f"/projects/{pa}/milestones/m1/complete",
                               {"completed_on": "2024-07-10", "evidence": "营业执照 licence"},
                               action="milestone.completed", entity=("milestone", "m1"), **on_project)
    assert (event["before"]["status"], event["after"]["status"]) == ("open", "done")
    state, event = await t.act("POST", f"/projects/{pa}/investments",
                               {"received_on": "2024-07-15", "amount": "5000000.00", "source_note": "第一笔"},
                               action="investment.recorded",
                               entity=lambda r: ("investment", r["investments"][-1]["entry_id"]), **on_project)
    assert event["after"]["amount"] == "5000000.00" and state["realized_investment"] == "5000000.00"
    _, event = await t.act("POST", f"/projects/{pa}/suspend", {"reason": "用地纠纷"}, action="project.suspended",
                           entity=("project", pa), **on_project)
    assert (event["before"], event["after"], event["comment"]) == (
        {"status": "active"}, {"status": "suspended"}, "用地纠纷")
    _, event = await t.act("POST", f"/projects/{pa}/resume", {"comment": "settled"}, action="project.resumed",
                           entity=("project", pa), **on_project)
    assert (event["before"], event["after"]) == ({"status": "suspended"}, {"status": "active"})
    _, event = await t.act("POST", f"/projects/{pb}/cancel", {"reason": "公司调整计划"},
                           action="project.cancelled", entity=("project", pb), workflow=f"project-{pb}",
                           cooperation_id=cid, project_id=pb)
    assert event["after"] == {"status": "cancelled"}
    # The cancelled project tells its cooperation: one system event.
    closed = await t.system_event(f"project-closed:{pb}", "cooperation.project_closed", wf)
    assert closed["after"]["project_status"] == "cancelled"

    # ---- refused attempts: one event each, with the error
    await t.refused("POST", f"{base}/agreements/{fid}/submit", status=409,
                    action="api:POST /cooperations/{cooperation_id}/agreements/{agreement_id}/submit",
                    entity=("agreement", fid))
    await t.refused("POST", f"{base}/negotiation-events", {"kind": "banquet", "occurred_on": "2024-02-01"},
                    status=422, action=NEGOTIATION, entity=("cooperation", cid))
    await t.refused("POST", f"/projects/{pa}/milestones/m1/move", {"new_due_date": "2030-01-01", "reason": "late"},
                    status=409, action="api:POST /projects/{project_id}/milestones/{milestone_id}/move",
                    entity=("milestone", "m1"))
    unknown = new_id("nobody-")
    await t.refused("POST", f"/cooperations/{unknown}/terminate", {"reason": "x"}, status=404,
                    action="api:POST /cooperations/{cooperation_id}/terminate", entity=("cooperation", unknown))
    await t.refused("POST", f"/organizations/{unknown}/people", {"name": "A", "title": "B"}, status=404,
                    action="api:POST /organizations/{organization_id}/people", entity=("organization", unknown))
    await t.refused("POST", "/organizations", {"name": f"博奥中恒 Boao Zhongheng {suffix}", "kind": "company"},
                    status=409, action="api:POST /organizations", entity=("request", "-"))
    await t.refused("POST", f"{base}/terminate", {"reason": "x"}, status=401, action="auth.rejected",
                    entity=("cooperation", cid), headers={"Authorization": "Bearer acc_not-a-real-token"},
                    anonymous=True)
    await t.refused("GET", "/audit", status=401, action="auth.rejected", entity=("request", "-"),
                    headers={"Authorization": "Bearer acc_not-a-real-token"}, anonymous=True)
    await t.refused("PATCH", f"{base}/agreements/{fid}", {"title": "x"}, status=401, action="auth.rejected",
                    entity=("agreement", fid), headers={"Authorization": ""}, anonymous=True)

    # ---- termination, and the system's cancellation of the open project
    state, event = await t.act("POST", f"{base}/terminate", {"reason": "公司战略调整"},
                               action="cooperation.terminated", entity=("cooperation", cid), **on_coop)
    assert (event["before"], event["after"], event["comment"]) == (
        {"stage": "in_delivery"}, {"stage": "terminated"}, "公司战略调整")
    cancelled = await t.system_event("cooperation-terminated", "project.cancelled", pwf)
    assert cancelled["after"] == {"status": "cancelled"} and cancelled["project_id"] == pa
    # A closed cooperation refuses (409) and that is recorded too.
    await t.refused("POST", f"{base}/negotiation-events", {"kind": "note", "occurred_on": "2024-02-01"},
                    status=409, action=NEGOTIATION, entity=("cooperation", cid))

    # ---- the database clock to the microsecond: not all events fall on whole milliseconds
    assert len({e["recorded_at"].microsecond % 1000 for e in t.events}) > 1
    assert all(a["recorded_at"] < b["recorded_at"] for a, b in pairwise(t.events))
    assert all(a["seq"] < b["seq"] for a, b in pairwise(t.events))
    # Every row of this cooperation is accounted for: staff actions, system follow-ups, refused attempts.
    mine = [e["seq"] for e in t.events + t.others if e["cooperation_id"] == cid]
    # Reminders of the template's overdue milestones (notice.*, the reminder tests' subject) may
    # land at any moment while the projects are open: not actions on the records.
    extra = [dict(r) for r in await pool.fetch(
        "SELECT seq, action, actor_id, request_id FROM audit_events WHERE cooperation_id = $1 "
        "AND NOT seq = ANY($2::bigint[]) AND action NOT LIKE 'notice.%'", cid, mine)]
    # The one race: the project cancelled by the termination tells its cooperation it closed; if the
    # cooperation's run has not ended yet it records that too (a system event), otherwise nothing.
    assert extra in ([], [{"seq": extra[0]["seq"] if extra else 0, "action": "cooperation.project_closed",
                           "actor_id": "system", "request_id": f"project-closed:{pa}"}]), extra


def framework_body_for(gov: str, company: str) -> dict[str, Any]:
    return {"kind": "framework", "title": "战略合作框架协议 Strategic Cooperation Framework Agreement",
            "parties": [{"organization_id": gov, "signatory_name": "Sun Fuquan", "signatory_title": "Vice Mayor"},
                        {"organization_id": company, "signatory_name": "Chen Dong", "signatory_title": "CPO"}]}


def investment_body_for(park: str, company: str) -> dict[str, Any]:
    return {"kind": "investment", "title": "项目投资协议 Project Investment Agreement",
            "parties": [{"organization_id": park, "signatory_name": "Director Zhou", "signatory_title": "Director"},
                        {"organization_id": company, "signatory_name": "Xie Xuhui", "signatory_title": "Chairman"}]}


# ---------------------------------------------------------------- reads of the trail, replays, secrets


async def test_searches_exports_and_verifications_are_audited(api, pool: asyncpg.Pool) -> None:
    t = Trail(api, pool)
    w = await world(api.http)
    coop = ok(await api.http.post("/cooperations", json={
        "title": f"Audit reads {w.suffix}", "lead_organization_id": w.gov_id,
        "partner_organization_id": w.company_id, "liaison_officer": "Officer"}), 201)
    cid = coop["cooperation_id"]

    _, event = await t.read("/audit", {"cooperation_id": cid, "q": "博奥", "limit": 5}, "audit.searched")
    assert event["after"] == {"cooperation_id": cid, "q": "博奥", "cursor": None}
    _, event = await t.read("/audit", {"cooperation_id": cid, "cursor": 10**12}, "audit.searched")
    assert event["after"] == {"cooperation_id": cid, "cursor": 10**12}
    for fmt in ("csv", "jsonl"):
        _, event = await t.read("/audit/export", {"cooperation_id": cid, "format": fmt}, "audit.exported")
        assert event["after"] == {"cooperation_id": cid, "format": fmt}
    _, event = await t.read("/audit/export",
                            {"action": "cooperation.created", "since": "2024-01-01T00:00:00+08:00"}, "audit.exported")
    assert event["after"]["action"] == "cooperation.created" and event["after"]["format"] == "csv"
    assert datetime.fromisoformat(event["after"]["since"]) == datetime.fromisoformat("2024-01-01T00:00:00+08:00")
    _, event = await t.read(f"/cooperations/{cid}/audit", {}, "audit.searched")
    assert event["after"] == {"cooperation_id": cid}
    response, event = await t.read("/audit/verify", {}, "audit.verified")
    assert event["after"] == response.json()


async def test_reading_the_trail_is_for_auditors_and_a_refusal_is_audited(app, api, pool: asyncpg.Pool) -> None:
    """A liaison officer sees their department's cooperations, but not the audit trail: each read
    of it is a 403, and the refused attempt itself is an event (the auditor finds it)."""
    w = await world(api.http)
    coop = ok(await api.http.post("/cooperations", json={
        "title": f"Audit refusals {w.suffix}", "lead_organization_id": w.gov_id,
        "partner_organization_id": w.company_id, "liaison_officer": "Officer"}), 201)
    cid = coop["cooperation_id"]
    at = datetime.now().astimezone().isoformat()
    async with user_client(app, pool, ["liaison_officer"], API_DEPARTMENT, "Officer Not Auditor") as officer:
        assert ok(await officer.http.get(f"/cooperations/{cid}"))["id"] == cid  # they see the cooperation
        reads = [("/audit", {"cooperation_id": cid}, "/audit", ("request", "-")),
                 ("/audit/export", {"cooperation_id": cid, "format": "csv"}, "/audit/export", ("request", "-")),
                 ("/audit/verify", {}, "/audit/verify", ("request", "-")),
                 ("/audit/checkpoints", {}, "/audit/checkpoints", ("request", "-")),
                 (f"/cooperations/{cid}/as-of", {"at": at}, "/cooperations/{cooperation_id}/as-of",
                  ("cooperation", cid))]
        for path, params, route, entity in reads:
            ua = agent()
            response = await officer.http.get(path, params=params, headers={"User-Agent": ua})
            assert response.status_code == 403, (path, response.text)
            assert response.json()["detail"] == "only an auditor may search, export or verify the audit trail"
            found = await events_by_agent(pool, ua)
            assert [(e["action"], e["outcome"]) for e in found] == [(f"api:GET {route}", "refused")], path
            event = found[0]
            assert (event["actor_id"], event["actor_name"], event["actor_role"], event["auth_method"]) == (
                officer.user_id, "Officer Not Auditor", "liaison_officer", "api_token")
            assert (event["entity_type"], event["entity_id"]) == entity
            assert event["error"] == response.json()["detail"]
            assert event["after"] == {"method": "GET", "path": "/api/v1" + path, "status": 403}
            await check_linked(pool, event)
        # Nothing was read: no audit.searched, audit.exported or audit.verified event of theirs.
        assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE actor_id = $1 AND outcome = 'succeeded'",
                                   officer.user_id) == 0
    # The auditor finds every refusal in the trail.
    refusals = ok(await api.http.get("/audit", params={"actor_id": officer.user_id, "outcome": "refused"}))["items"]
    assert len(refusals) == len(reads)


async def test_an_idempotent_replay_adds_no_event(api, pool: asyncpg.Pool) -> None:
    w = await world(api.http)
    coop = ok(await api.http.post("/cooperations", json={
        "title": f"Replays {w.suffix}", "lead_organization_id": w.gov_id, "partner_organization_id": w.company_id,
        "liaison_officer": "Officer"}), 201)
    path = f"/cooperations/{coop['cooperation_id']}/negotiation-events"
    body = {"kind": "meeting", "occurred_on": "2024-02-01", "summary": "第一次会谈"}
    key = f"replay-{uuid.uuid4().hex}"
    request_id = idempotent_request_id(api.user_id, key)

    first = await api.http.post(path, json=body, headers={"Idempotency-Key": key, "User-Agent": agent()})
    assert first.status_code == 200
    for _ in range(2):
        ua = agent()
        again = await api.http.post(path, json=body, headers={"Idempotency-Key": key, "User-Agent": ua})
        assert (again.status_code, again.headers.get("idempotent-replayed")) == (200, "true")
        assert again.json() == first.json()
        assert await events_by_agent(pool, ua) == []
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE request_id = $1", request_id) == 1

    # A refused attempt replayed: recorded once, not at each replay.
    bad_key = f"replay-refused-{uuid.uuid4().hex}"
    bad = {"kind": "meeting", "occurred_on": "2999-01-01"}  # in the future: 422 from the workflow
    answers = []
    for _ in range(3):
        ua = agent()
        response = await api.http.post(path, json=bad, headers={"Idempotency-Key": bad_key, "User-Agent": ua})
        answers.append((response.status_code, len(await events_by_agent(pool, ua))))
    assert answers == [(422, 1), (422, 0), (422, 0)]


async def test_no_event_holds_a_bearer_token(api, pool: asyncpg.Pool) -> None:
    """Neither the caller's token nor a rejected one, nor the token's stored hash, is in any event."""
    bogus = f"acc_{uuid.uuid4().hex}{uuid.uuid4().hex}"
    for headers in ({"Authorization": f"Bearer {bogus}"},
                    {"Authorization": f"Bearer {bogus}", "Idempotency-Key": "k"}):
        response = await api.http.post("/organizations", json={"name": "x", "kind": "company"}, headers=headers)
        assert response.status_code == 401
    assert (await api.http.get("/audit", headers={"Authorization": f"Bearer {bogus}"})).status_code == 401
    needles = [api.token, bogus, hash_token(api.token).hex(), hash_token(bogus).hex()]
    for needle in needles:
        found = await pool.fetchval("SELECT count(*) FROM audit_events e WHERE strpos(e::text, $1) > 0", needle)
        assert found == 0, f"an audit event holds {needle[:8]}..."


# ---------------------------------------------------------------- failed attempts (5xx)


class BrokenTemporal:
    """A Temporal client that fails every action, as an outage or a bug would."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_workflow_handle_for(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


async def failing_app_client(pool: asyncpg.Pool, api, error: Exception) -> httpx.AsyncClient:
    from api.app import create_app
    from api.services import Services

    app = create_app(Services(pool=pool, client=BrokenTemporal(error), task_queue=TASK_QUEUE,  # type: ignore[arg-type]
                              audit_key=AUDIT_KEY))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                             base_url="http://accord.test/api/v1",
                             headers={"Authorization": f"Bearer {api.token}"}, timeout=30)


async def _failed_attempt(api, pool: asyncpg.Pool, error: Exception, status: int) -> dict[str, Any]:
    w = await world(api.http)
    coop = ok(await api.http.post("/cooperations", json={
        "title": f"Outage {w.suffix}", "lead_organization_id": w.gov_id, "partner_organization_id": w.company_id,
        "liaison_officer": "Officer"}), 201)
    cid = coop["cooperation_id"]
    ua = agent()
    async with await failing_app_client(pool, api, error) as http:
        response = await http.post(f"/cooperations/{cid}/negotiation-events",
                                   json={"kind": "note", "occurred_on": "2024-01-01"}, headers={"User-Agent": ua})
    assert response.status_code == status
    found = await events_by_agent(pool, ua)
    assert [(e["action"], e["outcome"]) for e in found] == [(NEGOTIATION, "failed")]
    event = found[0]
    assert (event["actor_id"], event["cooperation_id"], event["entity_type"]) == (api.user_id, cid, "cooperation")
    assert event["after"] == {"method": "POST", "path": f"/api/v1/cooperations/{cid}/negotiation-events",
                              "status": status}
    await check_linked(pool, event)
    return event


async def test_a_write_that_fails_with_503_is_audited_as_failed(api, pool: asyncpg.Pool) -> None:
    event = await _failed_attempt(api, pool, RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b""), 503)
    assert event["error"] == "the workflow service is unavailable; nothing was changed, try again"


async def test_a_write_that_crashes_with_500_is_audited_as_failed(api, pool: asyncpg.Pool) -> None:
    event = await _failed_attempt(api, pool, RuntimeError("temporal client exploded"), 500)
    assert "RuntimeError" in event["error"] and "temporal client exploded" in event["error"]


# ---------------------------------------------------------------- refusals by the idempotency middleware


async def test_a_write_refused_for_its_idempotency_key_is_audited(api, pool: asyncpg.Pool) -> None:
    """The key reused with another body, or a malformed key: refused before any route, recorded all the same."""
    key = f"mismatch-{uuid.uuid4().hex}"
    w = await world(api.http)
    ok(await api.http.post("/organizations", json={"name": f"Bureau A {w.suffix}", "kind": "bureau"},
                           headers={"Idempotency-Key": key}), 201)
    attempts = []
    for headers in ({"Idempotency-Key": key}, {"Idempotency-Key": "x" * 201}):
        ua = agent()
        response = await api.http.post("/organizations", json={"name": f"Bureau B {w.suffix}", "kind": "bureau"},
                                       headers={**headers, "User-Agent": ua})
        assert response.status_code == 422
        attempts.append([(e["outcome"], e["error"]) for e in await events_by_agent(pool, ua)])
    assert all(len(a) == 1 and a[0][0] == "refused" for a in attempts), attempts
