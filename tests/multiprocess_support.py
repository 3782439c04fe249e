"""What the tests that run Accord as real processes share (tests/test_multiprocess.py, tests/faults/).

The real command (`.venv/bin/accord worker`, `accord api`) started as child processes configured only
by ACCORD_* variables, stopped with SIGTERM (or killed); a client that sends staff actions with an
Idempotency-Key and keeps a ledger of the answered writes; one cooperation's whole lifecycle through
it (21 writes, a reminder by inbox and email); polling with a deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
from temporalio.api.enums.v1 import EventType, PendingActivityState, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from db.users import create_user, issue_token
from domain.audit import OFFICE_TZ
from tests.conftest import API_DEPARTMENT, LEGAL_DEPARTMENT, new_id
from tests.test_api_support import (FRAMEWORK_SIGNED_ON, INVESTMENT_SIGNED_ON, cooperation_body, framework_body,
                                    investment_body)
from tests.test_audit_support import idempotent_request_id

ACCORD = Path(sys.executable).parent / "accord"
WRITES_PER_LIFECYCLE = 21


@dataclass
class Staff:
    user_id: str
    name: str
    token: str


@dataclass
class Process:
    name: str
    process: asyncio.subprocess.Process
    log: Path
    port: int  # the API's port, or the worker's metrics port

    @property
    def identity(self) -> str:
        """The Temporal identity of a worker: the SDK's default, pid@host."""
        return f"{self.process.pid}@{socket.gethostname()}"

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""



@dataclass
class Write:
    user_agent: str
    request_id: str
    path: str


@dataclass
class WriteAccount:
    """Each acknowledged write held against the audit trail by its unique User-Agent."""

    lost: list[str]  # paths of writes without a succeeded audit event
    twice: list[str]  # with more than one
    wrong_request: list[str]  # whose event carries another request id


async def account_writes(pool: asyncpg.Pool, writes: list[Write]) -> WriteAccount:
    rows = await pool.fetch("SELECT user_agent, request_id FROM audit_events "
                            "WHERE user_agent = ANY($1::text[]) AND outcome = 'succeeded'", [w.user_agent for w in writes])
    per_agent = Counter(r["user_agent"] for r in rows)
    by_agent = {r["user_agent"]: r["request_id"] for r in rows}
    return WriteAccount(
        lost=[w.path for w in writes if per_agent[w.user_agent] == 0],
        twice=[w.path for w in writes if per_agent[w.user_agent] > 1],
        wrong_request=[w.path for w in writes if w.user_agent in by_agent and by_agent[w.user_agent] != w.request_id])


@dataclass
class Cluster:
    """The two APIs, and what was sent through them."""

    apis: list[httpx.AsyncClient]
    writes: list[Write] = field(default_factory=list)
    per_api: Counter[int] = field(default_factory=Counter)
    retries: int = 0
    expected_writes: int = 0
    cooperations: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)

    async def send(self, turn: itertools.count[int], who: Staff, method: str, path: str, body: Any = None,
                   status: int = 200) -> Any:
        """One request to the next API in `turn`; a 429/503 or a refused connection is retried
        with the same Idempotency-Key (on the other API), as a client of the load balancer would."""
        key = f"multiprocess-{uuid.uuid4().hex}"
        user_agent = f"accord-multiprocess/{uuid.uuid4().hex}"
        headers = {"Authorization": f"Bearer {who.token}", "User-Agent": user_agent}
        if method in ("POST", "PATCH"):
            headers["Idempotency-Key"] = key
        response = None
        for _attempt in range(20):
            which = next(turn) % len(self.apis)
            try:
                response = await self.apis[which].request(method, path, json=body, headers=headers)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code not in (429, 503):
                self.per_api[which] += 1
                break
            self.retries += 1
            await asyncio.sleep(0.3)
        assert response is not None, f"{method} {path}: no answer"
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        if "Idempotency-Key" in headers:
            self.writes.append(Write(user_agent, idempotent_request_id(who.user_id, key), path))
        return response.json()


@dataclass
class Outcome:
    cooperation_id: str
    project_id: str


async def lifecycle(cluster: Cluster, number: int, officer: Staff, reviewer: Staff, leader: Staff,
                    department: str, pool: asyncpg.Pool, patience: float = 30) -> Outcome:
    """One cooperation from its organizations to its completion, every request to the other API
    than the one before. 21 writes."""
    turn = itertools.count(number)
    send = cluster.send
    suffix = new_id()

    async def org(name: str, kind: str) -> str:
        return (await send(turn, officer, "POST", "/organizations",
                           {"name": f"{name} {suffix}", "kind": kind, "region": "Mianyang, Sichuan"}, 201))["id"]

    gov, park, company = (await org("绵阳市人民政府 Municipal Government", "government"),
                          await org("高新区管委会 Park Committee", "park_committee"),
                          await org("Partner Technology Co., Ltd.", "company"))

    w = SimpleNamespace(suffix=suffix, gov_id=gov, park_id=park, company_id=company)  # as test_api_support's World
    state = await send(turn, officer, "POST", "/cooperations",
                       cooperation_body(w, department=API_DEPARTMENT, liaison_officer=officer.name), 201)
    cid = state["cooperation_id"]
    cluster.cooperations.append(cid)
    base = f"/cooperations/{cid}"
    await send(turn, officer, "POST", f"{base}/negotiation-events",
               {"kind": "forum", "occurred_on": "2024-01-20", "place": "Mianyang, Sci-Tech Expo",
                "participants": ["Xie Xuhui"], "summary": f"forum {number}"})
    drafted: set[str] = set()

    async def agreement(body: dict[str, Any], parties: tuple[str, str], signed_on: Any) -> str:
        after = await send(turn, officer, "POST", f"{base}/agreements", body)
        (aid,) = [a["agreement_id"] for a in after["agreements"] if a["agreement_id"] not in drafted]
        drafted.add(aid)
        await send(turn, officer, "POST", f"{base}/agreements/{aid}/submit")
        await send(turn, reviewer, "POST", f"{base}/agreements/{aid}/review-steps/legal_review/approve",
                   {"comment": "同意 Approved"})
        await send(turn, leader, "POST", f"{base}/agreements/{aid}/review-steps/leadership_approval/approve",
                   {"comment": "同意 Approved"})
        for party in parties:
            await send(turn, officer, "POST", f"{base}/agreements/{aid}/signatures",
                       {"organization_id": party, "signed_on": signed_on.isoformat()})
        return aid

    await agreement(framework_body(w), (gov, company), FRAMEWORK_SIGNED_ON)
    investment = await agreement(investment_body(w), (park, company), INVESTMENT_SIGNED_ON)

    today = datetime.now(OFFICE_TZ).date()
    state = await send(turn, officer, "POST", f"{base}/projects", {
        "agreement_id": investment, "title": f"Regional headquarters {suffix}", "site": "High-tech Zone 高新区",
        "committed_investment": "50000000.00", "responsible_department": department,
        "responsible_officer": officer.name,
        "milestones": [{"name": "公司注册 Company registration", "due_date": today.isoformat()},
                       {"name": "Opening", "due_date": (today + timedelta(days=120)).isoformat()}]}, 201)
    (pid,) = [p["project_id"] for p in state["projects"]]
    cluster.projects.append(pid)
    await send(turn, officer, "POST", f"/projects/{pid}/investments",
               {"received_on": "2024-07-01", "amount": "1000000.00", "source_note": f"tranche {number}"})
    await send(turn, officer, "POST", f"/projects/{pid}/milestones/m2/complete",
               {"completed_on": today.isoformat(), "evidence": "Opened early"})

    # The milestone due today is reminded (inbox and email) before it is completed.
    async def reminded() -> bool:
        return await pool.fetchval("SELECT count(*) FROM notice_deliveries WHERE project_id = $1 "
                                   "AND milestone_id = 'm1' AND status = 'sent'", pid) >= 2

    await eventually(reminded, patience)
    done = await send(turn, officer, "POST", f"/projects/{pid}/milestones/m1/complete",
                      {"completed_on": today.isoformat(), "evidence": "Business licence"})
    assert done["status"] == "completed", f"project {pid}: {done['status']}"

    async def completed() -> bool:
        return (await send(turn, officer, "GET", base))["stage"] == "completed"

    await eventually(completed, patience)
    return Outcome(cid, pid)


async def eventually(check, timeout: float, interval: float = 0.2) -> Any:
    """Poll `check` until it answers something true. A Temporal call the dev server cancels (it
    does under load: seen in a full `make test`) counts as "not yet", not as a failure."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = await check()
        except RPCError as error:
            if error.status != RPCStatusCode.CANCELLED:
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:g}s: {getattr(check, '__name__', check)}")
        await asyncio.sleep(interval)


# ---------------------------------------------------------------- the processes


def process_env(base: dict[str, str]) -> dict[str, str]:
    """This environment without any ACCORD_* of the developer's, plus `base`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}, **base}


async def start(name: str, args: list[str], env: dict[str, str], folder: Path, port: int) -> Process:
    log = folder / f"{name}.log"
    with log.open("wb") as out:  # the child keeps its own descriptor
        process = await asyncio.create_subprocess_exec(
            str(ACCORD), *args, env=env, cwd=folder, stdin=asyncio.subprocess.DEVNULL, stdout=out,
            stderr=asyncio.subprocess.STDOUT)
    return Process(name, process, log, port)


async def stop(proc: Process, timeout: float) -> tuple[int | None, float]:
    """SIGTERM, then wait; (exit code or None if it had to be killed, seconds it took)."""
    started = time.monotonic()
    if proc.process.returncode is None:
        proc.process.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.wait_for(proc.process.wait(), timeout)
    except TimeoutError:
        proc.process.kill()
        await proc.process.wait()
        return None, time.monotonic() - started
    return code, time.monotonic() - started


async def pollers(client: Client, task_queue: str) -> set[str]:
    answer = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
    return {p.identity for p in answer.pollers}


async def running_on(client: Client, project_ids: list[str], identity: str) -> list[str]:
    """The activities the worker `identity` is running now for these projects."""
    found = []
    for pid in list(project_ids):
        described = await client.get_workflow_handle(f"project-{pid}").describe()
        found += [f"project-{pid}:{a.activity_type.name}" for a in described.raw_description.pending_activities
                  if a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                  and a.last_worker_identity == identity]
    return found


async def owns_one(client: Client, cooperation_ids: list[str], identity: str) -> bool:
    """Whether the worker `identity` completed the last workflow task of one of these cooperations
    (it holds the workflow on its sticky queue: after a stop the other worker must take it over)."""
    for cid in list(cooperation_ids):
        last = None
        async for event in client.get_workflow_handle(f"cooperation-{cid}").fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                last = event.workflow_task_completed_event_attributes.identity
        if last == identity:
            return True
    return False


async def answers(http: httpx.AsyncClient, path: str) -> bool:
    try:
        return (await http.get(path)).status_code == 200
    except httpx.TransportError:
        return False


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Team:
    officer: Staff
    reviewer: Staff
    leader: Staff


async def make_team(conn: asyncpg.Connection, prefix: str, suffix: str) -> Team:
    """A liaison officer (and auditor), a reviewer of another department and a leader, with tokens and
    email addresses (English notices)."""
    async def staff(roles: list[str], dept: str, name: str) -> Staff:
        user = await create_user(conn, f"{prefix}-{name.split()[0].lower()}-{suffix}", f"{name} {suffix}", roles, dept)
        await conn.execute("UPDATE users SET email = $2, language = 'en' WHERE id = $1",
                           user.id, f"{user.username}@gov.example")
        return Staff(user.id, user.display_name, await issue_token(conn, user.id, prefix))
    return Team(await staff(["liaison_officer", "auditor"], API_DEPARTMENT, "Officer MP"),
                await staff(["reviewer"], LEGAL_DEPARTMENT, "Counsel MP"),
                await staff(["leader"], API_DEPARTMENT, "Director MP"))
