"""Staff actions through the real HTTP API: one whole lifecycle, every request timed.

The bodies are those of tests/test_api_support.py and runtime/demo.py: a cooperation with a
negotiation event, the framework agreement drafted, submitted, reviewed (legal review by a
reviewer of another department, leadership approval by a leader) and signed by both parties,
the same for the project investment agreement, then 2 projects x 6 milestones, every milestone
completed (which completes the projects, and then the cooperation). 28 staff actions.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from db.users import create_user, issue_token
from domain.audit import OFFICE_TZ

DEPARTMENT = "Investment Promotion Bureau (bench) 投资促进局"
LEGAL = "Legal Affairs Office (bench) 法制办"
PROJECTS = 2
MILESTONES = 6
ACTIONS_PER_LIFECYCLE = 1 + 1 + 6 + 6 + PROJECTS + PROJECTS * MILESTONES
FRAMEWORK_SIGNED_ON = "2024-03-01"
INVESTMENT_SIGNED_ON = "2024-06-15"


class ActionFailed(RuntimeError):
    pass


@dataclass
class Sample:
    kind: str
    ms: float
    status: int


@dataclass
class Staff:
    """The three people of a lifecycle: officer (drafts, signs, runs projects), reviewer, leader."""

    officer: httpx.AsyncClient
    reviewer: httpx.AsyncClient
    leader: httpx.AsyncClient
    officer_name: str
    government: str = ""
    park: str = ""
    company: str = ""
    samples: list[Sample] = field(default_factory=list)

    async def send(self, who: httpx.AsyncClient, kind: str, method: str, path: str, body: Any = None,
                   status: int = 200) -> Any:
        started = time.perf_counter()
        try:
            response = await who.request(method, path, json=body)
        except httpx.TransportError as error:  # counted as a failed lifecycle; never retried blindly
            raise ActionFailed(f"{kind}: {method} {path}: {type(error).__name__}: {error}") from error
        ms = (time.perf_counter() - started) * 1000
        if response.status_code != status:
            raise ActionFailed(f"{kind}: {method} {path} answered {response.status_code}: {response.text[:500]}")
        if method != "GET":
            self.samples.append(Sample(kind, ms, response.status_code))
        return response.json()


async def make_staff(pool: asyncpg.Pool, base_url: str, suffix: str = "") -> tuple[Staff, dict[str, str]]:
    """Users with real API tokens (as `accord user create` makes them) and their HTTP clients."""
    suffix = suffix or uuid.uuid4().hex[:8]
    tokens = {}
    async with pool.acquire() as conn:
        for key, roles, department, name in (
                ("officer", ["liaison_officer", "auditor"], DEPARTMENT, f"Bench Officer {suffix}"),
                ("reviewer", ["reviewer"], LEGAL, f"Bench Counsel {suffix}"),
                ("leader", ["leader"], DEPARTMENT, f"Bench Director {suffix}")):
            user = await create_user(conn, f"bench-{key}-{suffix}", name, roles, department)
            tokens[key] = await issue_token(conn, user.id, "bench")
    clients = {key: http_client(base_url, token) for key, token in tokens.items()}
    return Staff(clients["officer"], clients["reviewer"], clients["leader"], f"Bench Officer {suffix}"), tokens


def http_client(base_url: str, token: str) -> httpx.AsyncClient:
    # Idle connections are dropped after 1 s, before uvicorn's 5 s keep-alive closes them: a request
    # sent on a connection the server is closing fails with ReadError (seen at 64 clients, where a
    # reviewer's connection idles between two review steps).
    return httpx.AsyncClient(base_url=f"{base_url}/api/v1", headers={"Authorization": f"Bearer {token}"},
                             timeout=120, limits=httpx.Limits(max_connections=200, max_keepalive_connections=200,
                                                              keepalive_expiry=1.0))


async def close_staff(staff: Staff) -> None:
    for http in (staff.officer, staff.reviewer, staff.leader):
        await http.aclose()


async def register_organizations(staff: Staff, suffix: str) -> None:
    """The cast's organizations, once per run (reference data, not part of a lifecycle)."""

    async def org(name: str, kind: str) -> str:
        body = {"name": f"{name} {suffix}", "kind": kind, "region": "Mianyang, Sichuan"}
        return (await staff.send(staff.officer, "organization", "POST", "/organizations", body, 201))["id"]

    staff.government = await org("绵阳市人民政府 Municipal Government", "government")
    staff.park = await org("高新区管委会 Park Committee", "park_committee")
    staff.company = await org("Partner Technology Co., Ltd.", "company")
    staff.samples.clear()


def _parties(a: str, b: str) -> list[dict[str, str]]:
    return [{"organization_id": a, "signatory_name": "Sun Fuquan", "signatory_title": "Vice Mayor"},
            {"organization_id": b, "signatory_name": "Chen Dong", "signatory_title": "CPO"}]


async def lifecycle(staff: Staff, number: int) -> str:
    """One whole lifecycle; returns the cooperation id. Raises ActionFailed on any unexpected answer."""
    send, officer = staff.send, staff.officer
    state = await send(officer, "create_cooperation", "POST", "/cooperations", {
        "title": f"Strategic cooperation {number} 战略合作", "lead_organization_id": staff.government,
        "partner_organization_id": staff.company, "areas": ["Sci-Tech Expo 科博会", "Intellectual property 知识产权"],
        "liaison_officer": staff.officer_name, "department": DEPARTMENT, "started_on": "2024-01-10",
        "target_signing_date": "2024-03-01", "description": "From negotiation to signing within three months."}, 201)
    cid = state["cooperation_id"]
    base = f"/cooperations/{cid}"
    await send(officer, "record_negotiation", "POST", f"{base}/negotiation-events", {
        "kind": "forum", "occurred_on": "2024-01-20", "place": "Mianyang, Sci-Tech Expo",
        "participants": ["Xie Xuhui"], "summary": f"Forum at the Fifth Sci-Tech Expo ({number})"})
    drafted: set[str] = set()

    async def agreement(kind: str, title: str, parties: tuple[str, str], signed_on: str) -> str:
        after = await send(officer, "draft_agreement", "POST", f"{base}/agreements",
                           {"kind": kind, "title": title, "parties": _parties(*parties)})
        (aid,) = [a["agreement_id"] for a in after["agreements"] if a["agreement_id"] not in drafted]
        drafted.add(aid)
        await send(officer, "submit_agreement", "POST", f"{base}/agreements/{aid}/submit")
        await send(staff.reviewer, "decide_review_step", "POST",
                   f"{base}/agreements/{aid}/review-steps/legal_review/approve", {"comment": "同意 Approved"})
        await send(staff.leader, "decide_review_step", "POST",
                   f"{base}/agreements/{aid}/review-steps/leadership_approval/approve", {"comment": "同意 Approved"})
        for party in parties:
            await send(officer, "sign_agreement", "POST", f"{base}/agreements/{aid}/signatures",
                       {"organization_id": party, "signed_on": signed_on})
        return aid

    await agreement("framework", "战略合作框架协议 Strategic Cooperation Framework Agreement",
                    (staff.government, staff.company), FRAMEWORK_SIGNED_ON)
    investment = await agreement("investment", "项目投资协议 Project Investment Agreement",
                                 (staff.park, staff.company), INVESTMENT_SIGNED_ON)
    today = datetime.now(OFFICE_TZ).date()
    project_ids = []
    for p in range(PROJECTS):
        before = set(project_ids)
        state = await send(officer, "create_project", "POST", f"{base}/projects", {
            "agreement_id": investment, "title": f"Regional headquarters {number}-{p}", "site": "High-tech Zone 高新区",
            "committed_investment": "50000000.00", "responsible_department": DEPARTMENT,
            "responsible_officer": staff.officer_name,
            # Due far ahead: no reminder falls due during the bench (the default policy's first is
            # 30 working days before), so the figures are the actions' own.
            "milestones": [{"name": f"Milestone {m}", "due_date": (today + timedelta(days=120 + 30 * m)).isoformat()}
                           for m in range(MILESTONES)]}, 201)
        (pid,) = [x["project_id"] for x in state["projects"] if x["project_id"] not in before]
        project_ids.append(pid)
    for pid in project_ids:
        for m in range(1, MILESTONES + 1):
            await send(officer, "complete_milestone", "POST", f"/projects/{pid}/milestones/m{m}/complete",
                       {"completed_on": today.isoformat(), "evidence": f"Evidence {m}"})
    return cid


async def stages(pool: asyncpg.Pool, cooperation_ids: list[str]) -> dict[str, int]:
    rows = await pool.fetch("SELECT stage, count(*) AS n FROM cooperations WHERE id = ANY($1) GROUP BY stage",
                            cooperation_ids)
    return {r["stage"]: r["n"] for r in rows}


async def projects_by_status(pool: asyncpg.Pool, cooperation_ids: list[str]) -> dict[str, int]:
    rows = await pool.fetch("SELECT status, count(*) AS n FROM projects WHERE cooperation_id = ANY($1) GROUP BY status",
                            cooperation_ids)
    return {r["status"]: r["n"] for r in rows}


def today() -> date:
    return datetime.now(OFFICE_TZ).date()
