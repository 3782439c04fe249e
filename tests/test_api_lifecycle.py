"""The whole cooperation lifecycle as a liaison officer drives it through the HTTP API.

Organizations and people, a cooperation, negotiation events, the framework
agreement through review to signature, the investment agreement, projects with
the default milestone template or their own milestones, milestone and investment
work, suspension, cancellation and completion; then the read side: the detail
view, the list with its filters, text search and cursor pagination, and the audit
trail. Everything goes through HTTP; SQL only reads.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from api.services import office_today
from tests.conftest import API_DEPARTMENT, new_id
from tests.test_api_support import (
    FRAMEWORK_SIGNED_ON,
    INVESTMENT_SIGNED_ON,
    REVIEW_CHAIN,
    REVIEW_DESK,
    TEMPLATE_DAYS,
    audit_count,
    create_org,
    desk_for,
    eventually,
    framework_body,
    in_delivery,
    investment_body,
    ok,
    open_cooperation,
    project_body,
    user_id_of,
    world,
)


def agreement_in(state: dict[str, Any], agreement_id: str) -> dict[str, Any]:
    return next(a for a in state["agreements"] if a.get("agreement_id", a.get("id")) == agreement_id)


def milestone_in(project: dict[str, Any], milestone_id: str) -> dict[str, Any]:
    return next(m for m in project["milestones"] if m.get("milestone_id", m.get("id")) == milestone_id)


async def test_full_lifecycle_through_http(api, pool: asyncpg.Pool) -> None:
    http = api.http
    # Review steps are decided by others (domain/access.py): legal review by the reviewer, the
    # leadership approval by a leader of the department; everything else by the liaison officer.
    reviewer, leader = REVIEW_DESK["legal_review"], REVIEW_DESK["leadership_approval"]
    actions: list[str] = []  # every accepted action on the cooperation, in order
    me = ok(await http.get("/me"))
    assert (me["user_id"], me["name"], me["role"]) == (api.user_id, "Liaison Officer Test", "liaison_officer")

    # ---- registry: the city, the park committee, the company and their people
    w = await world(http, company_name=f"博奥中恒网络科技有限公司 Boao Zhongheng Network Technology {new_id()}")
    assert (w.government["kind"], w.park["kind"], w.company["kind"]) == ("government", "park_committee", "company")
    assert w.government["created_by"] == "Liaison Officer Test"
    assert ok(await http.get(f"/organizations/{w.company_id}")) == w.company
    liu = ok(await http.post(f"/organizations/{w.gov_id}/people", json={"name": "Liu Chao", "title": "Mayor"}), 201)
    assert liu["organization_id"] == w.gov_id and liu["title"] == "Mayor"
    people = ok(await http.get(f"/organizations/{w.gov_id}/people"))
    assert [p["name"] for p in people] == ["Liu Chao"]
    companies = ok(await http.get("/organizations", params={"kind": "company", "q": w.company["name"][-12:]}))
    assert [o["id"] for o in companies] == [w.company_id]

    # ---- the cooperation opens in negotiation
    officer = f"Officer Wang {w.suffix}"
    coop = ok(await http.post("/cooperations", json={
        "title": f"与博奥中恒战略合作 Strategic cooperation {w.suffix}",
        "lead_organization_id": w.gov_id,
        "partner_organization_id": w.company_id,
        "areas": ["Sci-Tech Expo 科博会", "Intellectual property 知识产权"],
        "liaison_officer": officer,
        "department": API_DEPARTMENT,  # the liaison officer's own: the only one they may open cooperations for
        "started_on": "2024-01-10",
        "target_signing_date": "2024-03-01",
        "description": "From negotiation to signing within three months.",
    }), 201)
    actions.append("cooperation.created")
    cid = coop["cooperation_id"]
    assert coop["stage"] == "negotiating"
    assert coop["lead_organization_name"] == w.government["name"]
    assert coop["partner_organization_name"] == w.company["name"]
    assert coop["created_by"] == "Liaison Officer Test" and coop["department"] == API_DEPARTMENT
    base = f"/cooperations/{cid}"

    # ---- negotiation: every event is answered with the new state
    state = ok(await http.post(f"{base}/negotiation-events", json={
        "kind": "forum", "occurred_on": "2024-01-20", "ends_on": "2024-01-21", "place": "Mianyang, Sci-Tech Expo",
        "participants": ["Xie Xuhui"], "summary": "IP and finance summit forum"}))
    actions.append("negotiation.recorded")
    assert [e["kind"] for e in state["negotiation"]] == ["forum"]
    state = ok(await http.post(f"{base}/negotiation-events", json={
        "kind": "inspection_visit", "occurred_on": "2024-02-01", "place": "Guangzhou",
        "participants": ["Liu Chao", "Xie Xuhui"], "summary": "Mayor Liu Chao led the visit"}))
    actions.append("negotiation.recorded")
    assert [e["kind"] for e in state["negotiation"]] == ["forum", "inspection_visit"]
    assert state["negotiation"][1]["recorded_by"] == "Liaison Officer Test"
    assert state["stage"] == "negotiating"

    # ---- framework agreement: draft, review chain, signatures
    state = ok(await http.post(f"{base}/agreements", json=framework_body(w)))
    actions.append("agreement.drafted")
    (framework,) = state["agreements"]
    fid = framework["agreement_id"]
    assert framework["status"] == "draft" and framework["kind"] == "framework"
    assert [(s["name"], s["status"]) for s in framework["review_steps"]] == [(n, "pending") for n in REVIEW_CHAIN]
    assert [p["organization_name"] for p in framework["parties"]] == [w.government["name"], w.company["name"]]

    state = ok(await http.post(f"{base}/agreements/{fid}/submit"))
    actions.append("agreement.submitted")
    assert agreement_in(state, fid)["status"] == "in_review"
    state = ok(await reviewer.post(f"{base}/agreements/{fid}/review-steps/legal_review/approve",
                                   json={"comment": "合法性审查通过"}))
    actions.append("agreement.review_approved")
    framework = agreement_in(state, fid)
    assert framework["status"] == "in_review"
    assert [s["status"] for s in framework["review_steps"]] == ["approved", "pending"]
    assert framework["review_steps"][0]["comment"] == "合法性审查通过"
    state = ok(await leader.post(f"{base}/agreements/{fid}/review-steps/leadership_approval/approve"))  # no body
    actions.append("agreement.review_approved")
    assert agreement_in(state, fid)["status"] == "approved"

    state = ok(await http.post(f"{base}/agreements/{fid}/signatures",
                               json={"organization_id": w.gov_id, "signed_on": FRAMEWORK_SIGNED_ON.isoformat()}))
    actions.append("agreement.party_signed")
    assert agreement_in(state, fid)["status"] == "approved" and state["stage"] == "negotiating"
    view = ok(await http.get(f"{base}/agreements/{fid}"))
    assert view["unsigned_parties"] == [w.company["name"]]
    assert [(s["organization_id"], s["signatory_name"]) for s in view["signatures"]] == [(w.gov_id, "Sun Fuquan")]

    state = ok(await http.post(f"{base}/agreements/{fid}/signatures", json={
        "organization_id": w.company_id, "signed_on": FRAMEWORK_SIGNED_ON.isoformat(),
        "signatory_name": "Xie Xuhui", "signatory_title": "Chairman (on behalf of the CPO)"}))
    actions.append("agreement.signed")
    assert state["stage"] == "framework_signed"
    framework = agreement_in(state, fid)
    assert framework["status"] == "signed" and framework["signed_on"] == FRAMEWORK_SIGNED_ON.isoformat()

    # ---- investment agreement: the park committee and the company
    state = ok(await http.post(f"{base}/agreements", json=investment_body(w)))
    actions.append("agreement.drafted")
    iid = next(a["agreement_id"] for a in state["agreements"] if a["kind"] == "investment")
    for who, path in ((http, "submit"), (reviewer, "review-steps/legal_review/approve"),
                      (leader, "review-steps/leadership_approval/approve")):
        state = ok(await who.post(f"{base}/agreements/{iid}/{path}"))
    actions += ["agreement.submitted", "agreement.review_approved", "agreement.review_approved"]
    state = ok(await http.post(f"{base}/agreements/{iid}/signatures",
                               json={"organization_id": w.park_id, "signed_on": "2024-06-10"}))
    actions.append("agreement.party_signed")
    assert state["stage"] == "framework_signed"
    state = ok(await http.post(f"{base}/agreements/{iid}/signatures",
                               json={"organization_id": w.company_id, "signed_on": INVESTMENT_SIGNED_ON.isoformat()}))
    actions.append("agreement.signed")
    assert state["stage"] == "in_delivery"
    # The agreement is signed when the last party signs.
    assert agreement_in(state, iid)["signed_on"] == INVESTMENT_SIGNED_ON.isoformat()

    # ---- detail view: agreements with signatures and unsigned parties
    detail = ok(await http.get(base))
    assert detail["stage"] == "in_delivery" and detail["created_by"] == "Liaison Officer Test"
    assert [e["kind"] for e in detail["negotiation"]] == ["forum", "inspection_visit"]
    assert detail["negotiation"][0]["ends_on"] == "2024-01-21"
    by_id = {a["id"]: a for a in detail["agreements"]}
    assert by_id[fid]["status"] == by_id[iid]["status"] == "signed"
    assert by_id[fid]["unsigned_parties"] == by_id[iid]["unsigned_parties"] == []
    assert {(s["organization_id"], s["signatory_name"], s["signatory_title"]) for s in by_id[fid]["signatures"]} == {
        (w.gov_id, "Sun Fuquan", "Vice Mayor"), (w.company_id, "Xie Xuhui", "Chairman (on behalf of the CPO)")}
    assert [(s["organization_id"], s["signed_on"]) for s in by_id[iid]["signatures"]] == [
        (w.park_id, "2024-06-10"), (w.company_id, INVESTMENT_SIGNED_ON.isoformat())]
    assert [d["decision"] for d in by_id[fid]["review_log"]] == ["approved", "approved"]
    assert detail["projects"] == []

    # ---- project A: the default template, dated from the investment agreement's signing
    state = ok(await http.post(f"{base}/projects", json=project_body(iid, title="西南区域总部 Regional HQ")), 201)
    actions.append("project.created")
    (ref,) = state["projects"]
    pa = ref["project_id"]
    assert ref["status"] == "planned" and ref["agreement_id"] == iid
    project_a = ok(await http.get(f"/projects/{pa}"))
    today = office_today()
    assert project_a["status"] == "planned" and project_a["cooperation_id"] == cid
    assert project_a["committed_investment"] == "50000000.00" and project_a["realized_investment"] == "0.00"
    assert len(project_a["milestones"]) == 6
    for m, (key, days) in zip(project_a["milestones"], TEMPLATE_DAYS.items(), strict=True):
        due = INVESTMENT_SIGNED_ON + timedelta(days=days)
        assert (m["id"], m["due_date"], m["status"]) == (key, due.isoformat(), "open")
        assert m["overdue_days"] == max((today - due).days, 0)
        assert m["moves"] == []
    assert project_a["milestones"][0]["overdue_days"] > 0  # signed in 2024: the first ones are late

    # ---- project B: its own milestones (one already overdue)
    state = ok(await http.post(f"{base}/projects", json=project_body(
        iid, title="知识产权研究院 IP Research Institute", committed_investment="20000000.50",
        milestones=[{"name": "Company registration", "due_date": "2024-07-01", "owner": "Chen Dong"},
                    {"name": "Opening ceremony", "due_date": "2099-01-01"}])), 201)
    actions.append("project.created")
    pb = next(p["project_id"] for p in state["projects"] if p["project_id"] != pa)
    project_b = ok(await http.get(f"/projects/{pb}"))
    assert [(m["id"], m["name"], m["owner"]) for m in project_b["milestones"]] == [
        ("m1", "Company registration", "Chen Dong"), ("m2", "Opening ceremony", None)]
    assert project_b["milestones"][0]["overdue_days"] == (today - date(2024, 7, 1)).days
    assert project_b["milestones"][1]["overdue_days"] == 0
    assert project_b["committed_investment"] == "20000000.50"

    detail = ok(await http.get(base))
    assert [p["id"] for p in detail["projects"]] == [pa, pb]
    assert detail["overdue_milestones"] == sum(1 for p in detail["projects"] for m in p["milestones"]
                                               if m["overdue_days"] > 0) > 0

    # ---- milestones on B: add, move (the reason is kept), complete
    result = ok(await http.post(f"/projects/{pb}/milestones",
                                json={"name": "Talent programme", "due_date": "2030-06-30", "owner": "HR"}))
    actions.append("milestone.added")
    assert len(result["milestones"]) == 3
    added = result["milestones"][2]["milestone_id"]
    assert result["milestones"][2]["name"] == "Talent programme"

    result = ok(await http.post(f"/projects/{pb}/milestones/m2/move",
                                json={"new_due_date": "2098-12-01", "reason": "提前开业 opening brought forward"}))
    actions.append("milestone.moved")
    moved = milestone_in(result, "m2")
    assert moved["due_date"] == "2098-12-01"
    assert [(mv["old_due_date"], mv["new_due_date"], mv["reason"]) for mv in moved["moves"]] == [
        ("2099-01-01", "2098-12-01", "提前开业 opening brought forward")]
    result = ok(await http.post(f"/projects/{pb}/milestones/m2/move",
                                json={"new_due_date": "2031-01-01", "reason": "second move"}))
    actions.append("milestone.moved")
    assert [mv["reason"] for mv in milestone_in(result, "m2")["moves"]] == [
        "提前开业 opening brought forward", "second move"]

    result = ok(await http.post(f"/projects/{pb}/milestones/m1/complete",
                                json={"completed_on": "2024-06-28", "evidence": "Business licence No. 123"}))
    actions.append("milestone.completed")
    done = milestone_in(result, "m1")
    assert (done["status"], done["completed_on"], done["evidence"]) == ("done", "2024-06-28", "Business licence No. 123")
    assert done["completed_by"] == "Liaison Officer Test"
    assert result["status"] == "active"  # the first completed milestone activates the project

    # ---- investments: exact decimals
    result = ok(await http.post(f"/projects/{pb}/investments",
                                json={"received_on": "2024-07-15", "amount": "0.10", "source_note": "tranche 1"}))
    actions.append("investment.recorded")
    assert result["realized_investment"] == "0.10"
    result = ok(await http.post(f"/projects/{pb}/investments",
                                json={"received_on": "2024-08-15", "amount": "0.20", "source_note": "tranche 2"}))
    actions.append("investment.recorded")
    assert result["realized_investment"] == "0.30"
    assert Decimal(result["realized_investment"]) == Decimal("0.10") + Decimal("0.20")
    project_b = ok(await http.get(f"/projects/{pb}"))
    assert project_b["realized_investment"] == "0.30"
    assert [(i["amount"], i["source_note"]) for i in project_b["investments"]] == [
        ("0.10", "tranche 1"), ("0.20", "tranche 2")]
    assert project_b["milestones"][1]["moves"][1]["reason"] == "second move"
    assert await pool.fetchval("SELECT realized_investment FROM projects WHERE id = $1", pb) == Decimal("0.30")

    # ---- A: suspend, resume (back to its previous status), cancel
    result = ok(await http.post(f"/projects/{pa}/suspend", json={"reason": "Land dispute 用地纠纷"}))
    actions.append("project.suspended")
    assert (result["status"], result["status_reason"]) == ("suspended", "Land dispute 用地纠纷")
    result = ok(await http.post(f"/projects/{pa}/resume", json={"comment": "dispute settled"}))
    actions.append("project.resumed")
    assert result["status"] == "planned"
    result = ok(await http.post(f"/projects/{pa}/suspend", json={"reason": "again"}))
    result = ok(await http.post(f"/projects/{pa}/resume"))  # the comment is optional
    actions += ["project.suspended", "project.resumed"]
    assert result["status"] == "planned"
    result = ok(await http.post(f"/projects/{pa}/cancel", json={"reason": "Company changed plans"}))
    actions.append("project.cancelled")
    assert (result["status"], result["status_reason"]) == ("cancelled", "Company changed plans")

    # One project is still open: the cooperation stays in delivery.
    detail = ok(await http.get(base))
    assert detail["stage"] == "in_delivery"
    # A cancelled project's milestones are no longer overdue.
    cancelled = next(p for p in detail["projects"] if p["id"] == pa)
    assert cancelled["status"] == "cancelled" and all(m["overdue_days"] == 0 for m in cancelled["milestones"])

    # ---- B: the last milestones complete it, and with it the cooperation
    result = ok(await http.post(f"/projects/{pb}/milestones/m2/complete",
                                json={"completed_on": today.isoformat(), "evidence": "Opened"}))
    actions.append("milestone.completed")
    assert result["status"] == "active"
    result = ok(await http.post(f"/projects/{pb}/milestones/{added}/complete",
                                json={"completed_on": today.isoformat(), "evidence": "Programme launched"}))
    actions.append("milestone.completed")
    assert result["status"] == "completed"
    assert all(m["status"] == "done" for m in result["milestones"])

    async def completed() -> dict[str, Any] | None:
        d = ok(await http.get(base))
        return d if d["stage"] == "completed" else None

    detail = await eventually(completed, timeout=10)
    assert {p["id"]: p["status"] for p in detail["projects"]} == {pa: "cancelled", pb: "completed"}
    assert detail["overdue_milestones"] == 0

    # ---- audit: one row per accepted action, with before and after
    await eventually(lambda: _audit_has(http, base, "cooperation.project_closed", 2))
    # Reminders of the template's overdue milestones may land meanwhile (notice.*, by the system):
    # they are not actions on the records.
    audit = [a for a in ok(await http.get(f"{base}/audit")) if not a["action"].startswith("notice.")]
    staff = [a for a in audit if a["actor_id"] != "system"]
    system = [a for a in audit if a["actor_id"] == "system"]
    assert [a["action"] for a in staff] == actions
    assert [a["action"] for a in system] == ["cooperation.project_closed"] * 2
    assert system[-1]["after"]["stage"] == "completed" and system[-1]["before"]["stage"] == "in_delivery"
    assert len(audit) == await audit_count(pool, cid) == len(actions) + 2
    deciders = {await user_id_of(reviewer): "Counsel Test", await user_id_of(leader): "Director Test"}
    decisions = [(a["actor_id"], a["actor_name"]) for a in staff if a["action"] == "agreement.review_approved"]
    assert decisions == list(deciders.items()) * 2  # legal review, then leadership approval, per agreement
    assert all(a["actor_id"] == api.user_id and a["actor_name"] == "Liaison Officer Test"
               for a in staff if a["action"] != "agreement.review_approved")
    assert [a["seq"] for a in audit] == sorted(a["seq"] for a in audit)  # oldest first
    for row in audit:
        assert row["cooperation_id"] == cid and row["outcome"] == "succeeded"
        assert isinstance(row["before"], dict) and isinstance(row["after"], dict) and row["after"]
    created = audit[0]
    assert created["before"] == {} and created["after"]["stage"] == "negotiating"
    signed = [a for a in audit if a["action"] == "agreement.signed"]
    assert [a["entity_id"] for a in signed] == [fid, iid]
    assert signed[0]["before"]["status"] == "approved" and signed[0]["after"]["status"] == "signed"
    move = next(a for a in audit if a["action"] == "milestone.moved")
    assert (move["project_id"], move["entity_id"], move["comment"]) == (pb, "m2", "提前开业 opening brought forward")
    assert (move["before"]["due_date"], move["after"]["due_date"]) == ("2099-01-01", "2098-12-01")
    invest = [a for a in audit if a["action"] == "investment.recorded"]
    assert [a["after"]["amount"] for a in invest] == ["0.10", "0.20"]
    suspended = next(a for a in audit if a["action"] == "project.suspended")
    assert (suspended["before"], suspended["after"]) == ({"status": "planned"}, {"status": "suspended"})

    # ---- a completed cooperation takes no more actions
    r = await http.post(f"{base}/negotiation-events", json={"kind": "note", "occurred_on": "2024-09-01"})
    assert r.status_code == 409 and "completed" in r.json()["detail"]
    # The refused attempt is audited as such; the accepted actions are unchanged.
    audit = ok(await http.get(f"{base}/audit"))
    refused = [a for a in audit if a["outcome"] != "succeeded" and not a["action"].startswith("notice.")]
    assert [(a["outcome"], a["error"]) for a in refused] == [("refused", r.json()["detail"])]
    assert refused[0]["actor_id"] == api.user_id
    assert await audit_count(pool, cid) == len(actions) + 2


async def _audit_has(http, base: str, action: str, count: int) -> bool:
    audit = ok(await http.get(f"{base}/audit"))
    return sum(1 for a in audit if a["action"] == action) >= count


async def test_rejected_review_returns_to_draft_then_edit_and_resubmit(api, pool: asyncpg.Pool) -> None:
    coop = await open_cooperation(api.http)
    fid = await coop.draft(framework_body(coop.w))
    await coop.post(f"/agreements/{fid}/submit")
    await coop.decide(fid, "legal_review", comment="ok")

    state = await coop.decide(fid, "leadership_approval", "reject",
                              comment="第三条投资金额需要明确 Clause 3 needs an amount")
    agreement = agreement_in(state, fid)
    assert agreement["status"] == "draft"
    # A rejection restarts the whole chain; the log keeps every decision.
    assert [s["status"] for s in agreement["review_steps"]] == ["pending", "pending"]
    assert [(d["step"], d["decision"], d["comment"]) for d in agreement["review_log"]] == [
        ("legal_review", "approved", "ok"),
        ("leadership_approval", "rejected", "第三条投资金额需要明确 Clause 3 needs an amount")]

    edited = framework_body(coop.w, title="战略合作框架协议（修订稿） Revised Framework Agreement")
    state = ok(await api.http.patch(f"{coop.path}/agreements/{fid}", json={
        "title": edited["title"],
        "parties": [{**edited["parties"][0], "signatory_name": "Liu Chao", "signatory_title": "Mayor"},
                    edited["parties"][1]],
        "review_steps": ["legal_review", "finance_review", "leadership_approval"],
    }))
    agreement = agreement_in(state, fid)
    assert agreement["title"] == edited["title"] and agreement["revision"] == 2
    assert agreement["parties"][0]["signatory_name"] == "Liu Chao"
    assert [s["name"] for s in agreement["review_steps"]] == ["legal_review", "finance_review", "leadership_approval"]

    state = await coop.post(f"/agreements/{fid}/submit")
    assert agreement_in(state, fid)["status"] == "in_review"
    for step in ("legal_review", "finance_review", "leadership_approval"):
        state = await coop.decide(fid, step, by=desk_for(step))  # finance_review: not legal, so the leader's
    assert agreement_in(state, fid)["status"] == "approved"
    state = await coop.sign(fid, coop.w.gov_id, FRAMEWORK_SIGNED_ON)
    view = ok(await api.http.get(f"{coop.path}/agreements/{fid}"))
    assert view["signatures"][0]["signatory_name"] == "Liu Chao"  # the edited designated signatory
    assert view["unsigned_parties"] == [coop.w.company["name"]]

    audit = ok(await api.http.get(f"{coop.path}/audit"))
    assert [a["action"] for a in audit] == [
        "cooperation.created", "agreement.drafted", "agreement.submitted", "agreement.review_approved",
        "agreement.review_rejected", "agreement.edited", "agreement.submitted", "agreement.review_approved",
        "agreement.review_approved", "agreement.review_approved", "agreement.party_signed"]
    rejected = audit[4]
    assert rejected["comment"] == "第三条投资金额需要明确 Clause 3 needs an amount"
    assert rejected["actor_id"] == await user_id_of(REVIEW_DESK["leadership_approval"])  # the leader, not the drafter
    assert rejected["before"]["status"] == "in_review" and rejected["after"]["status"] == "draft"
    edit = audit[5]
    assert edit["before"]["title"] == "战略合作框架协议 Strategic Cooperation Framework Agreement"
    assert edit["after"]["title"] == edited["title"]
    assert edit["before"]["revision"] == 1 and edit["after"]["revision"] == 2


async def test_terminate_cancels_open_projects(api, pool: asyncpg.Pool) -> None:
    coop = await in_delivery(api.http, projects=2)
    p1, p2 = coop.project_ids
    ok(await api.http.post(f"/projects/{p2}/suspend", json={"reason": "waiting"}))
    state = await coop.post("/terminate", {"reason": "公司战略调整 The company withdrew"})
    assert state["stage"] == "terminated" and state["termination_reason"] == "公司战略调整 The company withdrew"

    async def all_cancelled() -> list[dict[str, Any]] | None:
        projects = ok(await api.http.get("/projects", params={"cooperation_id": coop.id}))
        return projects if all(p["status"] == "cancelled" for p in projects) else None

    projects = await eventually(all_cancelled)
    assert {p["id"] for p in projects} == {p1, p2}
    assert all(p["status_reason"] == "cooperation terminated: 公司战略调整 The company withdrew" for p in projects)
    detail = await coop.get()
    assert detail["stage"] == "terminated" and detail["termination_reason"] == "公司战略调整 The company withdrew"
    listed = ok(await api.http.get("/cooperations", params={"stage": "terminated",
                                                            "liaison_officer": f"Officer Wang {coop.w.suffix}"}))
    assert [c["id"] for c in listed["items"]] == [coop.id]
    audit = ok(await api.http.get(f"{coop.path}/audit"))
    terminated = next(a for a in audit if a["action"] == "cooperation.terminated")
    assert terminated["before"] == {"stage": "in_delivery"} and terminated["after"] == {"stage": "terminated"}
    assert sum(1 for a in audit if a["action"] == "project.cancelled") == 2


# ---------------------------------------------------------------- the list


async def _list(http, **params: Any) -> dict[str, Any]:
    return ok(await http.get("/cooperations", params=params))


async def _ids(http, **params: Any) -> list[str]:
    return [c["id"] for c in (await _list(http, **params))["items"]]


async def test_list_filters_by_stage_partner_officer_and_overdue(api, pool: asyncpg.Pool) -> None:
    http = api.http
    w = await world(http)
    officer = f"Officer Filter {new_id()}"
    negotiating = await open_cooperation(http, w, liaison_officer=officer)
    framework = await open_cooperation(http, w, liaison_officer=officer)
    await framework.sign_framework()
    late = await open_cooperation(http, w, liaison_officer=officer)
    await late.sign_framework()
    await late.sign_investment()
    await late.add_project(milestones=[{"name": "Registration", "due_date": "2024-07-01"},
                                       {"name": "Opening", "due_date": "2099-01-01"}])
    on_time = await open_cooperation(http, w, liaison_officer=officer)
    await on_time.sign_framework()
    await on_time.sign_investment()
    await on_time.add_project(milestones=[{"name": "Opening", "due_date": "2099-01-01"}])
    other_company = await create_org(http, f"Other Company {new_id()}", "company")
    elsewhere = await open_cooperation(http, w, liaison_officer=officer, partner_organization_id=other_company["id"])

    everything = await _list(http, liaison_officer=officer)
    # Newest first.
    assert [c["id"] for c in everything["items"]] == [elsewhere.id, on_time.id, late.id, framework.id, negotiating.id]
    assert everything["next_cursor"] is None
    summary = {c["id"]: c for c in everything["items"]}
    assert summary[late.id]["overdue_milestones"] == 1 and summary[on_time.id]["overdue_milestones"] == 0
    assert summary[negotiating.id]["partner_organization_name"] == w.company["name"]
    assert summary[elsewhere.id]["partner_organization_name"] == other_company["name"]
    assert summary[framework.id]["stage"] == "framework_signed"

    assert await _ids(http, liaison_officer=officer, stage="negotiating") == [elsewhere.id, negotiating.id]
    assert await _ids(http, liaison_officer=officer, stage="framework_signed") == [framework.id]
    assert await _ids(http, liaison_officer=officer, stage="in_delivery") == [on_time.id, late.id]
    assert await _ids(http, liaison_officer=officer, stage="completed") == []
    assert await _ids(http, partner_organization_id=other_company["id"]) == [elsewhere.id]
    assert await _ids(http, liaison_officer=officer, partner_organization_id=w.company_id) == [
        on_time.id, late.id, framework.id, negotiating.id]
    assert await _ids(http, liaison_officer=officer, overdue="true") == [late.id]
    assert await _ids(http, liaison_officer=officer, overdue="false") == [
        elsewhere.id, on_time.id, framework.id, negotiating.id]
    assert await _ids(http, liaison_officer=officer, overdue="true", stage="negotiating") == []
    assert await _ids(http, liaison_officer=f"{officer} (someone else)") == []

    # Completing the late milestone clears the overdue flag.
    project = late.project_ids[0]
    ok(await http.post(f"/projects/{project}/milestones/m1/complete",
                       json={"completed_on": "2024-07-02", "evidence": "licence"}))
    assert await _ids(http, liaison_officer=officer, overdue="true") == []
    # So does suspending the project: only running projects count.
    ok(await http.post(f"/projects/{on_time.project_ids[0]}/milestones",
                       json={"name": "Late paperwork", "due_date": "2024-01-01"}))
    assert await _ids(http, liaison_officer=officer, overdue="true") == [on_time.id]
    ok(await http.post(f"/projects/{on_time.project_ids[0]}/suspend", json={"reason": "paused"}))
    assert await _ids(http, liaison_officer=officer, overdue="true") == []


async def test_list_text_search_in_chinese_and_english(api, pool: asyncpg.Pool) -> None:
    http = api.http
    suffix = new_id()
    w = await world(http, company_name=f"博奥中恒网络科技有限公司 Boao Zhongheng Network Technology Co., Ltd. {suffix}")
    officer = f"Officer Search {suffix}"
    coop = await open_cooperation(http, w, liaison_officer=officer, title=f"智慧城市合作 Smart City Partnership {suffix}",
                                  areas=["大数据中心 Big Data Center"])
    other = await open_cooperation(http, await world(http), liaison_officer=officer)

    # Chinese: part of the partner's name; the newest cooperations come first.
    found = await _list(http, q="博奥", limit=200)
    ids = [c["id"] for c in found["items"]]
    assert coop.id in ids and other.id not in ids
    assert all("博奥" in (c["partner_organization_name"] + c["title"] + c["lead_organization_name"]
                        + " ".join(c["areas"]) + c["liaison_officer"] + (c["department"] or ""))
               for c in found["items"])
    assert await _ids(http, q="博奥", liaison_officer=officer) == [coop.id]
    assert await _ids(http, q="大数据", liaison_officer=officer) == [coop.id]  # an area
    assert await _ids(http, q="智慧城市", liaison_officer=officer) == [coop.id]  # the title
    # English, case-insensitive, across title, partner and lead names.
    assert await _ids(http, q=f"boao ZHONGHENG network technology co., ltd. {suffix.upper()}") == [coop.id]
    assert await _ids(http, q=f"SMART city PARTNERSHIP {suffix}") == [coop.id]
    assert await _ids(http, q="big data", liaison_officer=officer) == [coop.id]
    assert set(await _ids(http, q=f"officer search {suffix}")) == {coop.id, other.id}  # the officer
    assert set(await _ids(http, q="municipal government", liaison_officer=officer)) == {coop.id, other.id}
    # No match, and LIKE wildcards are taken literally.
    assert await _ids(http, q=f"不存在的公司 {suffix}") == []
    assert await _ids(http, q="%", liaison_officer=officer) == []
    assert await _ids(http, q="_", liaison_officer=officer) == []
    # The search combines with the other filters.
    assert await _ids(http, q="博奥", liaison_officer=officer, stage="in_delivery") == []


async def test_list_cursor_pagination_sees_every_item_once(api, pool: asyncpg.Pool) -> None:
    http = api.http
    w = await world(http)
    officer = f"Officer Pages {new_id()}"
    created = [(await open_cooperation(http, w, liaison_officer=officer)).id for _ in range(5)]

    seen: list[str] = []
    sizes: list[int] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"liaison_officer": officer, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await _list(http, **params)
        seen += [c["id"] for c in page["items"]]
        sizes.append(len(page["items"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [2, 2, 1]
    assert len(seen) == len(set(seen)) == 5
    assert seen == list(reversed(created))  # newest first, each exactly once

    # A page size equal to the count: one page, no cursor.
    page = await _list(http, liaison_officer=officer, limit=5)
    assert len(page["items"]) == 5 and page["next_cursor"] is None
    # Exactly one more than fits: the second page holds the last item.
    page = await _list(http, liaison_officer=officer, limit=4)
    assert page["next_cursor"] is not None
    last = await _list(http, liaison_officer=officer, limit=4, cursor=page["next_cursor"])
    assert [c["id"] for c in last["items"]] == [created[0]] and last["next_cursor"] is None

    # A cursor keeps working while new cooperations are created ahead of it.
    first = await _list(http, liaison_officer=officer, limit=2)
    newer = (await open_cooperation(http, w, liaison_officer=officer)).id
    rest = await _list(http, liaison_officer=officer, limit=10, cursor=first["next_cursor"])
    assert [c["id"] for c in rest["items"]] == list(reversed(created))[2:]
    assert newer == (await _ids(http, liaison_officer=officer, limit=1))[0]


async def test_people_and_organizations_registry(api, pool: asyncpg.Pool) -> None:
    http = api.http
    suffix = new_id()
    bureau = await create_org(http, f"绵阳市投资促进局 Investment Promotion Bureau {suffix}", "bureau")
    assert bureau["region"] is None
    for name, title in [("Tan Gang", "Secretary-General"), ("Han Shengjian", "Vice Mayor")]:
        ok(await http.post(f"/organizations/{bureau['id']}/people", json={"name": name, "title": title}), 201)
    people = ok(await http.get(f"/organizations/{bureau['id']}/people"))
    assert [p["name"] for p in people] == ["Han Shengjian", "Tan Gang"]
    assert [o["id"] for o in ok(await http.get("/organizations", params={"q": f"投资促进局 investment "
                                                                            f"PROMOTION bureau {suffix}"}))] == [
        bureau["id"]]
    assert ok(await http.get("/organizations", params={"q": suffix, "kind": "company"})) == []
    rows = await pool.fetch("SELECT action, after FROM audit_events WHERE entity_id = $1", bureau["id"])
    assert [r["action"] for r in rows] == ["organization.created"]
    person_rows = await pool.fetchval(
        "SELECT count(*) FROM audit_events WHERE action = 'person.created' AND after->>'organization_id' = $1",
        bureau["id"])
    assert person_rows == 2
    assert Counter(p["organization_id"] for p in people) == {bureau["id"]: 2}

