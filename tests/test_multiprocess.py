"""Two `accord worker` and two `accord api` processes against one Temporal dev server and one PostgreSQL.

The processes are the real command (`.venv/bin/accord`), configured only by ACCORD_* variables
as in production: the API and the workers connect as `accord_app`, on a task queue of their own,
with email going to a real SMTP server (aiosmtpd) in this test. Several cooperations go through
a whole lifecycle at once, every request sent to the two APIs in turn, while one worker is
stopped with SIGTERM in the middle of it. Then:

- every accepted action has exactly one audit event, and each workflow's events are numbered
  1, 2, 3 ... without a gap or a repeat (nothing lost, nothing twice);
- every notice is delivered once per channel: one delivery row, one inbox message, one email
  with its Message-ID, one `notice.delivered` event;
- the stopped worker exited 0 within its shutdown timeout, the other one finished everything
  (the histories show its identity on the workflow tasks after the stop);
- the replicas share nothing in memory: an Idempotency-Key replays on the other API, a session
  signed in on one API is valid on the other and ends there for both.

The session worker reminds on a calendar that is always open (tests/conftest.py): the
processes read the same one by name (ACCORD_REMINDER_CALENDAR), so a milestone due today is
reminded at once whatever day the suite runs.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
from aiosmtpd.controller import Controller
from temporalio.api.enums.v1 import EventType, PendingActivityState, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from db.passwords import set_password
from db.users import create_user, issue_token
from domain.audit import OFFICE_TZ
from runtime.mail_sink import free_port
from tests.conftest import ALWAYS_OPEN, API_DEPARTMENT, LEGAL_DEPARTMENT, new_id
from tests.test_api_support import (FRAMEWORK_SIGNED_ON, INVESTMENT_SIGNED_ON, cooperation_body, framework_body,
                                    investment_body, plain_failure)
from tests.test_audit_support import idempotent_request_id

ACCORD = Path(sys.executable).parent / "accord"
COOPERATIONS = 6
SHUTDOWN_SECONDS = 8.0  # ACCORD_WORKER_SHUTDOWN_SECONDS of the workers
# SIGTERM worker-1 once this share of the writes was answered, it holds a cooperation's workflow
# and it runs an activity (or, if it never runs one, at the latter share).
STOP_AFTER = 0.4
STOP_AT_THE_LATEST = 0.8
# A notice due at once can reach its delivery before the cooperation committed the project's row:
# that first attempt fails by design and is retried (activities/reminders.py). Any other retry is not.
BENIGN_RETRY = "is not in the read model yet"
MAIL_HOLD = 1.5  # seconds the SMTP server takes to accept a message: a delivery is in flight that long
PASSWORD = "multi-process sign-in 2026"


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


class SlowMail:
    """A real SMTP server (aiosmtpd) that takes MAIL_HOLD seconds to accept each message, so a
    delivery activity is in flight long enough to be caught by the SIGTERM."""

    def __init__(self) -> None:
        self.accepted: list[bytes] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(MAIL_HOLD)
        self.accepted.append(envelope.original_content)
        return "250 OK"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


@dataclass
class Write:
    user_agent: str
    request_id: str
    path: str


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
                    department: str, pool: asyncpg.Pool) -> Outcome:
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

    await eventually(reminded, 30)
    done = await send(turn, officer, "POST", f"/projects/{pid}/milestones/m1/complete",
                      {"completed_on": today.isoformat(), "evidence": "Business licence"})
    assert done["status"] == "completed", f"project {pid}: {done['status']}"

    async def completed() -> bool:
        return (await send(turn, officer, "GET", base))["stage"] == "completed"

    await eventually(completed, 30)
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


# ---------------------------------------------------------------- the test


@plain_failure
async def test_two_workers_and_two_apis_share_the_work_and_survive_a_sigterm(
        dev_env: WorkflowEnvironment, pg_url: str, pool: asyncpg.Pool) -> None:
    started_at = time.monotonic()
    suffix = new_id()
    queue = f"accord-multiprocess-{suffix}"
    department = f"Park Committee {suffix}"  # the projects' department: no webhooks of other tests
    folder = Path(tempfile.mkdtemp(prefix="accord-multiprocess-"))
    client = dev_env.client

    # The processes connect as accord_app, as in production; the owner (this pool) set things up.
    await pool.execute("ALTER ROLE accord_app LOGIN")
    app_url = pg_url.replace("postgresql://postgres:@", "postgresql://accord_app:@", 1)
    assert app_url != pg_url, "the session database URL is not the embedded server's"
    async with pool.acquire() as conn:
        async def staff(roles: list[str], dept: str, name: str) -> Staff:
            user = await create_user(conn, f"mp-{name.split()[0].lower()}-{suffix}", f"{name} {suffix}", roles, dept)
            await conn.execute("UPDATE users SET email = $2, language = 'en' WHERE id = $1",
                               user.id, f"{user.username}@gov.example")
            return Staff(user.id, user.display_name, await issue_token(conn, user.id, "multiprocess"))
        officer = await staff(["liaison_officer", "auditor"], API_DEPARTMENT, "Officer MP")
        reviewer = await staff(["reviewer"], LEGAL_DEPARTMENT, "Counsel MP")
        leader = await staff(["leader"], API_DEPARTMENT, "Director MP")
        await set_password(conn, officer.user_id, PASSWORD)

    sink = SlowMail()
    sink.start()
    common = {
        "ACCORD_DATABASE_URL": app_url,
        "ACCORD_DATABASE_POOL_SIZE": "5",
        "ACCORD_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "ACCORD_TEMPORAL_NAMESPACE": client.namespace,
        "ACCORD_TASK_QUEUE": queue,
        "ACCORD_AUDIT_CHECKPOINT_KEY": f"multiprocess-key-{suffix}",
        "ACCORD_DATA_DIR": str(folder / "data"),
        "ACCORD_PUBLIC_URL": "http://accord.test",
        "ACCORD_LOG_FORMAT": "json",
        "ACCORD_SMTP_HOST": "127.0.0.1",
        "ACCORD_SMTP_PORT": str(sink.port),
        "ACCORD_SMTP_SENDER": "Accord <accord@accord.test>",
        "ACCORD_REMINDER_HOUR": "0",
        "ACCORD_REMINDER_UNTIL_HOUR": "24",
        "ACCORD_REMINDER_CALENDAR": ALWAYS_OPEN,
        "ACCORD_DELIVERY_FIRST_RETRY_SECONDS": "1",
        "ACCORD_WORKER_SHUTDOWN_SECONDS": str(SHUTDOWN_SECONDS),
    }
    processes: list[Process] = []
    try:
        for n in (1, 2):
            port = free_port()
            processes.append(await start(f"worker-{n}", ["worker"], process_env(
                {**common, "ACCORD_WORKER_METRICS_PORT": str(port)}), folder, port))
        for n in (1, 2):
            port = free_port()
            processes.append(await start(f"api-{n}", ["api", "--port", str(port)], process_env(common), folder, port))
        worker_1, worker_2, api_1, api_2 = processes

        apis = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{p.port}/api/v1", timeout=60) for p in (api_1, api_2)]
        roots = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{p.port}", timeout=10)
                 for p in (api_1, api_2, worker_1, worker_2)]
        try:
            # ---- all four up: the APIs ready, both workers polling the task queue
            for root in roots[:2]:  # the APIs
                async def api_alive(root: httpx.AsyncClient = root) -> bool:
                    return await answers(root, "/healthz")
                await eventually(api_alive, 40)
                async def api_ready(root: httpx.AsyncClient = root) -> bool:
                    return await answers(root, "/readyz")
                await eventually(api_ready, 10)
            for root in roots[2:]:  # the workers
                async def worker_alive(root: httpx.AsyncClient = root) -> bool:
                    return await answers(root, "/healthz")
                await eventually(worker_alive, 40)

            async def both_polling() -> bool:
                return {worker_1.identity, worker_2.identity} <= await pollers(client, queue)
            await eventually(both_polling, 40)
            ready_after = time.monotonic() - started_at

            # ---- nothing in memory: an idempotent replay and a session work on the other replica
            cluster = Cluster(apis)
            key = f"multiprocess-replay-{suffix}"
            body = {"name": f"Replay Co. {suffix}", "kind": "company"}
            headers = {"Authorization": f"Bearer {officer.token}", "Idempotency-Key": key}
            first = await apis[0].post("/organizations", json=body, headers=headers)
            again = await apis[1].post("/organizations", json=body, headers=headers)
            assert first.status_code == 201 and again.status_code == 201, f"{first.text} / {again.text}"
            assert again.headers.get("Idempotent-Replayed") == "true", "the second API did not replay"
            assert again.json() == first.json(), "the replay differs from the first answer"
            login = await apis[0].post("/auth/login", json={"username": f"mp-officer-{suffix}", "password": PASSWORD})
            assert login.status_code == 200, login.text
            cookie = {"Cookie": f"accord_session={login.cookies['accord_session']}"}
            for http in apis:
                http.cookies.clear()  # sent by hand below; the lifecycles use bearer tokens only
            seen = await apis[1].get("/auth/session", headers=cookie)
            assert seen.status_code == 200, seen.text
            assert seen.json()["csrf_token"] == login.json()["csrf_token"], "another session on the other API"
            out = await apis[1].post("/auth/logout", headers={**cookie, "X-CSRF-Token": seen.json()["csrf_token"]})
            assert out.status_code == 200, out.text
            assert (await apis[0].get("/auth/session", headers=cookie)).status_code == 401, "session lived on"
            for http in apis:
                http.cookies.clear()

            # ---- the lifecycles, staggered, and one worker stopped in the middle of them
            cluster.expected_writes = COOPERATIONS * 21

            async def staggered(number: int) -> Outcome:
                await asyncio.sleep(0.4 * number)
                return await lifecycle(cluster, number, officer, reviewer, leader, department, pool)

            tasks = [asyncio.create_task(staggered(n)) for n in range(COOPERATIONS)]
            runs = asyncio.gather(*tasks)
            in_flight: list[str] = []
            holds_a_workflow = False
            while not runs.done():
                share = len(cluster.writes) / cluster.expected_writes
                if share >= STOP_AFTER:
                    holds_a_workflow = holds_a_workflow or await owns_one(client, cluster.cooperations,
                                                                          worker_1.identity)
                    in_flight = await running_on(client, cluster.projects, worker_1.identity)
                    if holds_a_workflow and (in_flight or share >= STOP_AT_THE_LATEST):
                        break
                await asyncio.sleep(0.1)
            if runs.done():
                for task in tasks:
                    if not task.cancelled() and task.exception() is not None:
                        raise task.exception()
                raise AssertionError("the lifecycles ended before the worker could be stopped")
            writes_at_stop = len(cluster.writes)
            sigterm_at = datetime.now(UTC)
            code, took = await stop(worker_1, SHUTDOWN_SECONDS + 10)
            exited_at = datetime.now(UTC)
            try:
                outcomes = await runs
            finally:
                for task in tasks:
                    task.cancel()
            finished_after = time.monotonic() - started_at

            assert code == 0, f"worker-1 exit code {code}:\n{worker_1.tail()}"
            assert took <= SHUTDOWN_SECONDS + 5, f"worker-1 took {took:.1f}s to stop"
            assert worker_2.process.returncode is None, f"worker-2 died:\n{worker_2.tail()}"
            assert len(cluster.writes) == COOPERATIONS * 21, f"{len(cluster.writes)} writes answered"
            assert min(cluster.per_api[0], cluster.per_api[1]) >= sum(cluster.per_api.values()) // 3, \
                f"requests per API {dict(cluster.per_api)}"

            # ---- every accepted action: one audit event
            agents = [w.user_agent for w in cluster.writes]
            rows = await pool.fetch("SELECT user_agent, request_id, action FROM audit_events "
                                    "WHERE user_agent = ANY($1::text[]) AND outcome = 'succeeded'", agents)
            per_agent = Counter(r["user_agent"] for r in rows)
            missing = [w.path for w in cluster.writes if per_agent[w.user_agent] == 0]
            twice = [w.path for w in cluster.writes if per_agent[w.user_agent] > 1]
            assert not missing, f"writes without an audit event: {missing}"
            assert not twice, f"writes with more than one audit event: {twice}"
            by_agent = {r["user_agent"]: r["request_id"] for r in rows}
            assert all(by_agent[w.user_agent] == w.request_id for w in cluster.writes), "request ids differ"

            # ---- every workflow's events: 1, 2, 3 ... once each
            cooperation_ids = [o.cooperation_id for o in outcomes]
            project_ids = [o.project_id for o in outcomes]
            events = await pool.fetch(
                "SELECT workflow_id, event_seq FROM audit_events WHERE (cooperation_id = ANY($1::text[]) "
                "OR project_id = ANY($2::text[])) AND event_seq IS NOT NULL", cooperation_ids, project_ids)
            seqs: dict[str, list[int]] = defaultdict(list)
            for event in events:
                seqs[event["workflow_id"]].append(event["event_seq"])
            workflows = {f"cooperation-{c}" for c in cooperation_ids} | {f"project-{p}" for p in project_ids}
            assert set(seqs) == workflows, f"workflows with events: {sorted(seqs)}"
            broken = {wid: sorted(s) for wid, s in seqs.items() if sorted(s) != list(range(1, len(s) + 1))}
            assert not broken, f"event numbers with a gap or a repeat: {broken}"

            # ---- every notice: one row per channel, one inbox message, one email, one audit event
            deliveries = await pool.fetch("SELECT * FROM notice_deliveries WHERE project_id = ANY($1::text[])",
                                          project_ids)
            due = [d for d in deliveries if d["milestone_id"] == "m1"]
            assert sorted((d["project_id"], d["channel"]) for d in due) == sorted(
                (p, c) for p in project_ids for c in ("email", "inbox")), f"deliveries {len(due)}"
            assert {d["status"] for d in deliveries} == {"sent"}, "a delivery is not sent"
            inbox = [d["delivery_id"] for d in deliveries if d["channel"] == "inbox"]
            messages = Counter(r["id"] for r in await pool.fetch(
                "SELECT id FROM inbox_messages WHERE id = ANY($1::text[])", inbox))
            assert messages == Counter(inbox), "inbox messages are not one per inbox delivery"
            delivered = Counter(r["entity_id"] for r in await pool.fetch(
                "SELECT entity_id FROM audit_events WHERE action = 'notice.delivered' AND project_id = ANY($1::text[])",
                project_ids))
            assert delivered == Counter(d["delivery_id"] for d in deliveries), "notice.delivered not once each"
            mails = [email.message_from_bytes(raw, policy=email.policy.default) for raw in list(sink.accepted)]
            sent_ids = Counter(str(m["Message-ID"]) for m in mails)
            expected_ids = Counter(d["message_id"] for d in deliveries if d["channel"] == "email")
            assert sent_ids == expected_ids, f"emails {sent_ids} for deliveries {expected_ids}"

            # ---- the workers' share: both worked; after the stop only worker-2 did; no activity was
            # cut off: each ran once (attempt 1), those worker-1 held at the SIGTERM finished there
            identities: Counter[str] = Counter()
            handed_over = late = drained = 0
            retried: list[str] = []
            for wid in sorted(workflows):
                history = [e async for e in client.get_workflow_handle(wid).fetch_history_events()]
                tasks_done = [(e.event_time.ToDatetime(UTC), e.workflow_task_completed_event_attributes.identity)
                              for e in history if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
                whos = [who for _, who in tasks_done]
                identities.update(whos)
                late += sum(1 for at, who in tasks_done
                            if who == worker_1.identity and at > exited_at + timedelta(seconds=1))
                if worker_1.identity in whos and worker_2.identity in whos[whos.index(worker_1.identity):]:
                    handed_over += 1
                scheduled = {e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
                             for e in history if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED}
                retried += [f"{wid} {scheduled.get(a.scheduled_event_id)}: attempt {a.attempt} by {a.identity} "
                            f"after {a.last_failure.message!r}"
                            for a in (e.activity_task_started_event_attributes for e in history
                                      if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
                            if a.attempt > 1 and not a.last_failure.message.endswith(BENIGN_RETRY)]
                drained += sum(1 for e in history if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                               and e.activity_task_completed_event_attributes.identity == worker_1.identity
                               and e.event_time.ToDatetime(UTC) > sigterm_at)
            assert set(identities) <= {worker_1.identity, worker_2.identity}, f"identities {identities}"
            assert identities[worker_1.identity] > 0 and identities[worker_2.identity] > 0, f"{identities}"
            assert handed_over > 0, "no workflow moved from worker-1 to worker-2"
            assert late == 0, f"{late} workflow tasks completed by worker-1 after it exited"
            assert not retried, f"activities run more than once: {retried}"
            if in_flight:
                assert drained >= 1, f"worker-1 held {in_flight} at the SIGTERM and finished none of them"

            # ---- the rest stop cleanly too
            memory = {p.name: round(rss_mb(p.process.pid)) for p in processes[1:]}
            # uvicorn re-raises the SIGTERM it handled once it has shut down: -15 is its clean exit.
            for proc, clean in ((api_1, (0, -signal.SIGTERM)), (api_2, (0, -signal.SIGTERM)), (worker_2, (0,))):
                code, _ = await stop(proc, SHUTDOWN_SECONDS + 10)
                assert code in clean, f"{proc.name} exit code {code}:\n{proc.tail()}"
            print(f"\nmultiprocess: ready after {ready_after:.1f}s, {len(cluster.writes)} writes "
                  f"({dict(cluster.per_api)} per API, {cluster.retries} retried), SIGTERM after {writes_at_stop}, "
                  f"worker-1 stopped in {took:.1f}s, all done after {finished_after:.1f}s; workflow tasks "
                  f"{identities[worker_1.identity]} by worker-1, {identities[worker_2.identity]} by worker-2, "
                  f"{handed_over} workflows handed over; activities in flight on worker-1 at the SIGTERM {in_flight}, "
                  f"{drained} finished while it drained; {len(deliveries)} deliveries, {len(mails)} emails; "
                  f"RSS MB {memory}")
        finally:
            for http in (*apis, *roots):
                await http.aclose()
    finally:
        for proc in processes:
            if proc.process.returncode is None:
                await stop(proc, 15)
        sink.stop()
        shutil.rmtree(folder, ignore_errors=True)
