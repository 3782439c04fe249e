"""The fault-injection run: N lifecycles through real processes while parts fail, then a full account.

A `Stack` of its own, so that it may be stopped without touching the session's servers: an embedded
PostgreSQL, the Temporal dev server persisting to a SQLite file (`TemporalDevServer`, as `accord dev`
starts it), a real SMTP server (`MailSink`, aiosmtpd), `accord api` and `accord worker` as child
processes configured only by ACCORD_* variables; a supervisor restarts the worker whenever it is
gone. A `LedgerClient` sends every staff action with an Idempotency-Key, retries 503 (honouring
Retry-After), 429, "still in progress" and refused connections with the same key, and keeps a
ledger of every acknowledged write and of every answer (a 500, or a 503 without Retry-After, is
a violation). `run_faults` drives `Plan.lifecycles` lifecycles (tests/multiprocess_support.py:
21 writes, a reminder by inbox and email each) and, at seeded moments of their progress, one
fault after another: SIGKILL of the worker, the Temporal dev server stopped and started again,
PostgreSQL stopped for a while (probing the API meanwhile: 503 with Retry-After, nothing else),
the SMTP server down then up. Then 100 identical POSTs with one key at once (the If-Match race
is tests/faults/test_race.py). `account` holds the ledger against the audit trail, the read model, the
workflows (`runtime.reconcile`, and `accord reconcile` as a command) and the SMTP server.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import json
import os
import random
import shutil
import signal
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError

from api.errors import is_outage
from db.audit_chain import verify
from db.migrate import migrate
from db.pool import create_pool
from db.reminder_settings import save_calendar
from runtime.embedded import EmbeddedPostgres, TemporalDevServer, start_embedded_postgres
from runtime.mail_sink import MailSink, free_port
from runtime.reconcile import reconcile
from runtime.temporal import connect as connect_temporal
from tests.conftest import ALWAYS_OPEN, API_DEPARTMENT, always_open_calendar, new_id
from tests.multiprocess_support import (ACCORD, WRITES_PER_LIFECYCLE, Outcome, Process, Staff, Team, Write,
                                        account_writes, answers, eventually, lifecycle, make_team, pollers, process_env, start, stop)
from tests.test_api_support import cooperation_body
from tests.test_audit_support import idempotent_request_id

SUMMARIES: list[str] = []  # one line per fault run, printed at the end of the session (tests/faults/conftest.py)
RETRY_AFTER_CAP = 2.0  # seconds: the client honours Retry-After, at most this long (the run stays short)
PROBE_TIMEOUT = 60.0  # an answer during an outage must come; "never hang" is this generous bound
# A notice due at once can reach its delivery before the cooperation committed the project's row
# (activities/reminders.py retries it); not a fault of ours.
BENIGN_RETRY = "is not in the read model yet"


@dataclass
class Plan:
    """What one run does. The moments of the faults are drawn from `seed`, as shares of the writes."""

    lifecycles: int
    seed: int
    kills: int  # worker SIGKILLs
    pg_outage: float  # seconds PostgreSQL is stopped (0: not stopped)
    temporal_restart: bool
    smtp_outage: float  # seconds the SMTP server is down (0: never)
    storm: int = 100  # identical POSTs with one Idempotency-Key, at once
    patience: float = 600  # how long one logical write may take through every fault (a bound, not a target)
    stagger: float = 0.3  # seconds between lifecycle starts


@dataclass
class Fault:
    kind: str  # "kill" | "temporal" | "postgresql" | "smtp"
    at_share: float
    applied: bool = False
    note: str = ""


def schedule(plan: Plan) -> list[Fault]:
    """The faults of a run, in the order they happen, at seeded shares of the acknowledged writes."""
    rng = random.Random(plan.seed)
    faults = [Fault("kill", rng.uniform(0.05, 0.85)) for _ in range(plan.kills)]
    if plan.pg_outage:
        faults.append(Fault("postgresql", rng.uniform(0.2, 0.5)))
    if plan.temporal_restart:
        faults.append(Fault("temporal", rng.uniform(0.2, 0.7)))
    if plan.smtp_outage:
        faults.append(Fault("smtp", rng.uniform(0.1, 0.5)))  # and not before a project exists (see `chaos`)
    return sorted(faults, key=lambda f: f.at_share)


# ---------------------------------------------------------------- the client and its ledger


@dataclass
class LedgerClient:
    """Sends like a client of the load balancer; `writes` is the ledger of acknowledged writes."""

    apis: list[httpx.AsyncClient]
    patience: float
    writes: list[Write] = field(default_factory=list)
    cooperations: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)
    expected_writes: int = 0
    attempts: int = 0
    retries: int = 0
    unavailable: int = 0  # 503 answers (each with Retry-After)
    busy: int = 0  # 429
    in_progress: int = 0  # 409 "still in progress" (another attempt with this key holds it)
    refused_connections: int = 0  # transport errors: nothing answered
    replayed: int = 0  # answers with Idempotent-Replayed: true
    violations: list[str] = field(default_factory=list)  # a 500, a 503 without Retry-After

    async def send(self, turn: itertools.count[int], who: Staff, method: str, path: str, body: Any = None,
                   status: int = 200) -> Any:
        key = f"faults-{uuid.uuid4().hex}"
        user_agent = f"accord-faults/{uuid.uuid4().hex}"
        headers = {"Authorization": f"Bearer {who.token}", "User-Agent": user_agent}
        if method in ("POST", "PATCH"):
            headers["Idempotency-Key"] = key
        deadline = time.monotonic() + self.patience
        while True:
            which = next(turn) % len(self.apis)
            self.attempts += 1
            response: httpx.Response | None = None
            try:
                response = await self.apis[which].request(method, path, json=body, headers=headers)
            except httpx.TransportError:
                self.refused_connections += 1
                wait = 1.0
            else:
                wait = self.judge(response)
                if wait is None:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path}: no final answer within {self.patience:g}s; last "
                                     f"{response.status_code if response is not None else 'no answer'}")
            self.retries += 1
            await asyncio.sleep(wait)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        if response.headers.get("Idempotent-Replayed") == "true":
            self.replayed += 1
        if "Idempotency-Key" in headers:
            self.writes.append(Write(user_agent, idempotent_request_id(who.user_id, key), path))
        return response.json()

    def judge(self, response: httpx.Response) -> float | None:
        """None: a final answer. Otherwise how long to wait before the retry with the same key."""
        code = response.status_code
        what = f"{response.request.method} {response.request.url.path}"
        if code == 503:
            self.unavailable += 1
            retry_after = response.headers.get("Retry-After", "")
            if not retry_after.isdigit():
                self.violations.append(f"503 without Retry-After: {what}: {response.text[:200]}")
                return 1.0
            return min(float(retry_after), RETRY_AFTER_CAP)
        if code == 429:
            self.busy += 1
            return 0.5
        if code == 409 and "still in progress" in response.text:
            self.in_progress += 1
            return 1.0
        if code >= 500:
            self.violations.append(f"{code}: {what}: {response.text[:200]}")
            return 1.0
        return None


class PatientPool:
    """The owner pool for the lifecycle's own checks: a query during an outage waits for PostgreSQL."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    async def fetchval(self, query: str, *args: Any) -> Any:
        deadline = time.monotonic() + 300
        while True:
            try:
                return await self._stack.pool.fetchval(query, *args)
            except Exception as error:
                if not is_outage(error) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)


# ---------------------------------------------------------------- the stack


class Supervisor:
    """Keeps one `accord worker` running: whenever it is gone (killed, or exited because Temporal or
    PostgreSQL was away when it started) a new one is started."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.worker: Process | None = None
        self.starts = 0
        self.kills = 0
        self.exits: list[int] = []  # exit codes of workers that ended on their own
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        await self._spawn()
        self._task = asyncio.create_task(self._watch())

    async def _spawn(self) -> None:
        self.starts += 1
        port = free_port()
        self.worker = await start(f"worker-{self.starts}", ["worker"], process_env(
            {**self.stack.env, "ACCORD_WORKER_METRICS_PORT": str(port)}), self.stack.folder, port)

    async def _watch(self) -> None:
        while not self._stopping:
            worker = self.worker
            if worker is not None and worker.process.returncode is not None:
                if worker.process.returncode != -signal.SIGKILL:
                    self.exits.append(worker.process.returncode)
                await asyncio.sleep(0.5)
                await self._spawn()
            await asyncio.sleep(0.2)

    async def polling(self, client: Client, queue: str, done: asyncio.Event, timeout: float = 120) -> None:
        """Wait until the current worker polls the task queue (or the run is over)."""
        deadline = time.monotonic() + timeout
        while not done.is_set() and time.monotonic() < deadline:
            worker = self.worker
            try:
                if worker is not None and worker.process.returncode is None \
                        and worker.identity in await pollers(client, queue):
                    return
            except RPCError:
                pass  # Temporal just restarted: not yet
            await asyncio.sleep(0.3)

    async def kill(self) -> None:
        """SIGKILL the worker now; the watcher starts the next one."""
        worker = self.worker
        assert worker is not None
        if worker.process.returncode is None:
            worker.process.send_signal(signal.SIGKILL)
            self.kills += 1
            await worker.process.wait()

    async def close(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
        if self.worker is not None and self.worker.process.returncode is None:
            await stop(self.worker, 30)


class Stack:
    """PostgreSQL, Temporal, SMTP, one API and a supervised worker, all of this run's own."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.suffix = new_id()
        self.queue = f"accord-faults-{self.suffix}"
        self.pg: EmbeddedPostgres | None = None
        self.pool: asyncpg.Pool = None  # type: ignore[assignment]
        self.temporal = TemporalDevServer(folder / "temporal.sqlite", free_port(), free_port(), folder / "temporal.log")
        self.mail = MailSink(folder / "mail", port=0)
        self.client: Client = None  # type: ignore[assignment]
        self.api: Process | None = None
        self.supervisor = Supervisor(self)
        self.env: dict[str, str] = {}
        self.owner_url = ""
        self.team: Team = None  # type: ignore[assignment]
        self.audit_key = f"faults-key-{self.suffix}"

    @property
    def pgdata(self) -> Path:
        return self.folder / "pg" / "data"

    async def start(self) -> None:
        self.pg = await asyncio.to_thread(start_embedded_postgres, self.pgdata, "accord_faults")
        self.owner_url = self.pg.url
        self.pool = await create_pool(self.owner_url, max_size=4)
        async with self.pool.acquire() as conn:
            await migrate(conn)
            async with conn.transaction():
                await save_calendar(conn, always_open_calendar(), "every day a working day", "fault suite")
            await conn.execute("ALTER ROLE accord_app LOGIN")
            self.team = await make_team(conn, "faults", self.suffix)
        app_url = self.owner_url.replace("postgresql://postgres:@", "postgresql://accord_app:@", 1)
        assert app_url != self.owner_url
        await asyncio.to_thread(self.temporal.start)
        self.client = await connect_temporal(self.temporal.address)
        self.mail.start()
        self.env = {
            "ACCORD_DATABASE_URL": app_url,
            "ACCORD_DATABASE_POOL_SIZE": "5",
            "ACCORD_TEMPORAL_ADDRESS": self.temporal.address,
            "ACCORD_TASK_QUEUE": self.queue,
            "ACCORD_AUDIT_CHECKPOINT_KEY": self.audit_key,
            "ACCORD_DATA_DIR": str(self.folder / "data"),
            "ACCORD_PUBLIC_URL": "http://accord.test",
            "ACCORD_LOG_FORMAT": "json",
            "ACCORD_SMTP_HOST": "127.0.0.1",
            "ACCORD_SMTP_PORT": str(self.mail.port),
            "ACCORD_SMTP_SENDER": "Accord <accord@accord.test>",
            "ACCORD_REMINDER_HOUR": "0",
            "ACCORD_REMINDER_UNTIL_HOUR": "24",
            "ACCORD_REMINDER_CALENDAR": ALWAYS_OPEN,
            "ACCORD_DELIVERY_FIRST_RETRY_SECONDS": "1",
            "ACCORD_WORKER_SHUTDOWN_SECONDS": "5",
            # A delivery claimed by a worker that was killed is taken over once its lease ends.
            "ACCORD_DELIVERY_ATTEMPT_SECONDS": "8",
        }
        port = free_port()
        self.api = await start("api", ["api", "--port", str(port)], process_env(self.env), self.folder, port)
        await self.supervisor.start()
        root = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)
        try:
            async def api_ready() -> bool:
                return await answers(root, "/readyz")
            await eventually(api_ready, 120, 0.5)
        finally:
            await root.aclose()

    def http(self) -> httpx.AsyncClient:
        assert self.api is not None
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.api.port}/api/v1", timeout=PROBE_TIMEOUT)

    # ---- faults

    async def stop_postgresql(self) -> None:
        assert self.pg is not None
        await asyncio.to_thread(self.pg.stop)

    async def start_postgresql(self) -> None:
        self.pg = await asyncio.to_thread(start_embedded_postgres, self.pgdata, "accord_faults")
        assert self.pg.url == self.owner_url, "PostgreSQL came back elsewhere"

    async def restart_temporal(self, down: float) -> None:
        await asyncio.to_thread(self.temporal.stop)
        await asyncio.sleep(down)
        await asyncio.to_thread(self.temporal.start)

    async def close(self) -> None:
        await self.supervisor.close()
        if self.api is not None and self.api.process.returncode is None:
            await stop(self.api, 30)
        self.mail.stop()
        if self.pool is not None:
            await self.pool.close()
        await asyncio.to_thread(self.temporal.stop)
        if self.pg is not None:
            await asyncio.to_thread(self.pg.stop)

    def logs(self, lines: int = 40) -> str:
        parts = []
        for path in sorted(self.folder.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)


# ---------------------------------------------------------------- the run


@dataclass
class Result:
    plan: Plan
    faults: list[Fault]
    client: LedgerClient
    outcomes: list[Outcome]
    probes: list[tuple[str, int, str]] = field(default_factory=list)  # during the PostgreSQL outage
    storm: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    counts: dict[str, Any] = field(default_factory=dict)
    extra_cooperation: str = ""


async def open_one(client: LedgerClient, team: Team) -> str:
    """A cooperation in negotiation, through the ledger client."""
    turn = itertools.count()
    suffix = new_id()

    async def org(name: str, kind: str) -> str:
        return (await client.send(turn, team.officer, "POST", "/organizations",
                                  {"name": f"{name} {suffix}", "kind": kind}, 201))["id"]

    w = SimpleNamespace(suffix=suffix, gov_id=await org("Storm Government", "government"), park_id=None,
                        company_id=await org("Storm Company", "company"))
    state = await client.send(turn, team.officer, "POST", "/cooperations",
                              cooperation_body(w, department=API_DEPARTMENT, liaison_officer=team.officer.name), 201)
    return state["cooperation_id"]


async def probe_outage(stack: Stack, team: Team, cooperation_id: str | None) -> list[tuple[str, int, str]]:
    """While PostgreSQL is down: a read, a write with a key, a write without; each must be 503 with Retry-After."""
    found = []
    headers = {"Authorization": f"Bearer {team.officer.token}"}
    async with stack.http() as http:
        requests: list[tuple[str, str, dict[str, Any] | None, dict[str, str]]] = [
            ("GET", "/cooperations", None, headers),
            ("POST", "/organizations", {"name": f"Probe {new_id()}", "kind": "company"},
             {**headers, "Idempotency-Key": f"probe-{uuid.uuid4().hex}"}),
        ]
        if cooperation_id:
            requests.append(("POST", f"/cooperations/{cooperation_id}/negotiation-events",
                             {"kind": "note", "occurred_on": "2024-01-05", "summary": "probe"}, headers))
        for method, path, body, sent in requests:
            try:
                response = await http.request(method, path, json=body, headers=sent)
                found.append((f"{method} {path}", response.status_code, response.headers.get("Retry-After", "")))
            except httpx.TransportError as error:
                found.append((f"{method} {path}", 0, f"no answer: {error!r}"))
    return found


async def chaos(stack: Stack, plan: Plan, faults: list[Fault], client: LedgerClient, done: asyncio.Event,
                probes: list[tuple[str, int, str]]) -> None:
    """Apply the faults one after another as the ledger reaches their shares."""
    rng = random.Random(plan.seed + 1)
    for fault in faults:
        while not done.is_set():
            share = len(client.writes) / client.expected_writes
            if share >= fault.at_share and (fault.kind != "smtp" or client.projects):
                break
            await asyncio.sleep(0.1)
        if done.is_set():
            return
        await asyncio.sleep(rng.uniform(0, 0.5))  # not always right after an answer
        started, at = time.monotonic(), len(client.writes)
        if fault.kind == "kill":
            await stack.supervisor.kill()
        elif fault.kind == "temporal":
            await stack.restart_temporal(down=rng.uniform(2, 5))
        elif fault.kind == "postgresql":
            await stack.stop_postgresql()
            await asyncio.sleep(1)
            probes += await probe_outage(stack, stack.team, client.cooperations[0] if client.cooperations else None)
            # A write sent during the outage, whatever the lifecycles are doing: answered 503 until
            # PostgreSQL is back, retried with its key, acknowledged once, and in the ledger.
            attempts_before = client.attempts
            through = asyncio.create_task(client.send(itertools.count(), stack.team.officer, "POST", "/organizations",
                                                      {"name": f"Outage Co. {new_id()}", "kind": "company"}, 201))
            await asyncio.sleep(max(0.0, plan.pg_outage - (time.monotonic() - started)))
            await stack.start_postgresql()
            await through
            probes.append(("POST /organizations sent during the outage", 201, "acknowledged after "
                           f"{client.attempts - attempts_before} attempts (others' included)"))
        elif fault.kind == "smtp":
            stack.mail.stop()
            await asyncio.sleep(plan.smtp_outage)
            stack.mail.start()
        fault.applied = True
        fault.note = f"at {at}/{client.expected_writes} writes, {time.monotonic() - started:.1f}s"
        # The next fault only once the worker polls again: two kills in a row must hit two workers.
        await stack.supervisor.polling(stack.client, stack.queue, done)


async def run_faults(stack: Stack, plan: Plan) -> Result:
    started = time.monotonic()
    faults = schedule(plan)
    apis = [stack.http()]
    client = LedgerClient(apis, plan.patience)
    client.expected_writes = plan.lifecycles * WRITES_PER_LIFECYCLE
    team = stack.team
    department = f"Park Committee {stack.suffix}"
    pool = PatientPool(stack)
    done = asyncio.Event()
    probes: list[tuple[str, int, str]] = []
    try:
        async def staggered(number: int) -> Outcome:
            await asyncio.sleep(plan.stagger * number)
            return await lifecycle(client, number, team.officer, team.reviewer, team.leader,  # type: ignore[arg-type]
                                   department, pool, patience=plan.patience)  # type: ignore[arg-type]

        chaos_task = asyncio.create_task(chaos(stack, plan, faults, client, done, probes))
        try:
            outcomes = await asyncio.gather(*(staggered(n) for n in range(plan.lifecycles)))
        finally:
            done.set()
        await chaos_task  # a fault under way finishes (PostgreSQL, SMTP come back)
        result = Result(plan, faults, client, list(outcomes), probes)
        # The lifecycles' cooperations are completed (closed): the storm and the race get an open one.
        result.extra_cooperation = await open_one(client, team)
        result.storm = await idempotency_storm(client, team, result.extra_cooperation, plan.storm)
        result.seconds = time.monotonic() - started
        return result
    finally:
        for http in apis:
            await http.aclose()


async def idempotency_storm(client: LedgerClient, team: Team, cooperation_id: str, n: int) -> dict[str, Any]:
    """`n` identical POSTs with one Idempotency-Key at once, each retried (with the key) while another
    holds it: every one ends with the same answer, and the action happened once."""
    key = f"storm-{uuid.uuid4().hex}"
    user_agent = f"accord-faults-storm/{uuid.uuid4().hex}"
    headers = {"Authorization": f"Bearer {team.officer.token}", "Idempotency-Key": key, "User-Agent": user_agent}
    body = {"kind": "note", "occurred_on": "2024-01-05", "summary": f"storm {key}"}
    path = f"/cooperations/{cooperation_id}/negotiation-events"
    first: Counter[int] = Counter()

    async def one() -> httpx.Response:
        tries = 0
        while True:
            response = await client.apis[0].post(path, json=body, headers=headers)
            tries += 1
            if tries == 1:
                first[response.status_code] += 1
            if client.judge(response) is None:
                return response
            await asyncio.sleep(0.5)

    answers_ = await asyncio.gather(*(one() for _ in range(n)))
    statuses = Counter(a.status_code for a in answers_)
    assert statuses == Counter({200: n}), f"storm: final answers {statuses}"
    bodies = {a.content for a in answers_}
    assert len(bodies) == 1, "storm: the answers differ"
    client.writes.append(Write(user_agent, idempotent_request_id(team.officer.user_id, key), path))
    replayed = sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers_)
    return {"requests": n, "first answers": dict(first), "replayed": replayed, "applied": n - replayed}


# ---------------------------------------------------------------- the account


async def account(stack: Stack, result: Result) -> dict[str, Any]:
    """Hold the ledger against everything; returns the counts (and raises on the first discrepancy
    only after all of them are gathered, so the counts are printed either way)."""
    pool, client = stack.pool, result.client
    problems: list[str] = list(client.violations)
    cooperation_ids = [o.cooperation_id for o in result.outcomes]
    project_ids = [o.project_id for o in result.outcomes]

    # ---- every acknowledged write: one audit event, with its request id
    written = await account_writes(pool, client.writes)
    lost, twice = written.lost, written.twice
    if lost:
        problems.append(f"acknowledged writes without an audit event: {lost}")
    if twice:
        problems.append(f"writes with more than one audit event: {twice}")
    if written.wrong_request:
        problems.append(f"audit events with another request id: {written.wrong_request}")

    # ---- every workflow's events 1, 2, 3 ... once each; no request id twice
    events = await pool.fetch(
        "SELECT workflow_id, event_seq, request_id FROM audit_events WHERE workflow_id IS NOT NULL "
        "AND event_seq IS NOT NULL")
    seqs: dict[str, list[int]] = defaultdict(list)
    for e in events:
        seqs[e["workflow_id"]].append(e["event_seq"])
    broken = {w: sorted(s) for w, s in seqs.items() if sorted(s) != list(range(1, len(s) + 1))}
    if broken:
        problems.append(f"event numbers with a gap or a repeat: {broken}")
    request_twice = [k for k, c in Counter((e["workflow_id"], e["request_id"]) for e in events).items() if c > 1]
    if request_twice:
        problems.append(f"a request recorded twice: {request_twice}")

    # ---- the read model: every lifecycle at its end, every row once
    stages = Counter(r["stage"] for r in await pool.fetch(
        "SELECT stage FROM cooperations WHERE id = ANY($1::text[])", cooperation_ids))
    statuses = Counter(r["status"] for r in await pool.fetch(
        "SELECT status FROM projects WHERE id = ANY($1::text[])", project_ids))
    n = len(result.outcomes)
    if stages != Counter({"completed": n}) or statuses != Counter({"completed": n}):
        problems.append(f"end states: cooperations {dict(stages)}, projects {dict(statuses)}")
    counts_sql = {
        "negotiation_events": ("SELECT count(*) FROM negotiation_events WHERE cooperation_id = ANY($1::text[])",
                               cooperation_ids, n),
        "storm events": ("SELECT count(*) FROM negotiation_events WHERE cooperation_id = ANY($1::text[])",
                         [result.extra_cooperation], 1),
        "agreements": ("SELECT count(*) FROM agreements WHERE cooperation_id = ANY($1::text[])", cooperation_ids, 2 * n),
        "signatures": ("SELECT count(*) FROM signatures WHERE cooperation_id = ANY($1::text[])", cooperation_ids, 4 * n),
        "milestones done": ("SELECT count(*) FROM milestones WHERE project_id = ANY($1::text[]) AND status = 'done'",
                            project_ids, 2 * n),
        "investments": ("SELECT count(*) FROM investments WHERE project_id = ANY($1::text[])", project_ids, n),
    }
    rows_found = {}
    for name, (sql, ids, expected) in counts_sql.items():
        rows_found[name] = await pool.fetchval(sql, ids)
        if rows_found[name] != expected:
            problems.append(f"{name}: {rows_found[name]} rows, expected {expected}")

    # ---- the workflows: reconcile (the module, then the command) finds nothing
    report = await reconcile(pool, stack.client, task_queue=stack.queue)
    if not report.clean:
        problems.append("reconcile: " + "; ".join(map(str, report.differences[:20])))
        for record in sorted({d.record for d in report.differences})[:5]:
            kind, record_id = record.split()
            print(f"\n--- history of {kind}-{record_id}\n" + await history_outline(stack.client, f"{kind}-{record_id}"))
    command = await asyncio.create_subprocess_exec(
        str(ACCORD), "reconcile", env=process_env({**stack.env, "ACCORD_DATABASE_URL": stack.owner_url}),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(command.communicate(), 300)
    if command.returncode != 0:
        problems.append(f"accord reconcile exited {command.returncode}: {out.decode()[-2000:]}")

    # ---- notices: one delivery per project and channel, one inbox message, one email per Message-ID
    deliveries = await pool.fetch("SELECT * FROM notice_deliveries WHERE project_id = ANY($1::text[])", project_ids)
    due = sorted((d["project_id"], d["channel"]) for d in deliveries if d["milestone_id"] == "m1")
    expected_due = sorted((p, c) for p in project_ids for c in ("email", "inbox"))
    missing_notices = sorted(set(expected_due) - set(due))
    duplicate_notices = [k for k, c in Counter(due).items() if c > 1]
    if missing_notices or duplicate_notices:
        problems.append(f"notices missing {missing_notices}, twice {duplicate_notices}")
    not_sent = [d["delivery_id"] for d in deliveries if d["status"] != "sent"]
    if not_sent:
        problems.append(f"deliveries not sent: {not_sent}")
    inbox = [d["delivery_id"] for d in deliveries if d["channel"] == "inbox"]
    messages = Counter(r["id"] for r in await pool.fetch("SELECT id FROM inbox_messages WHERE id = ANY($1::text[])",
                                                         inbox))
    if messages != Counter(inbox):
        problems.append("inbox messages are not one per inbox delivery")
    delivered = Counter(r["entity_id"] for r in await pool.fetch(
        "SELECT entity_id FROM audit_events WHERE action = 'notice.delivered' AND project_id = ANY($1::text[])",
        project_ids))
    if delivered != Counter(d["delivery_id"] for d in deliveries):
        problems.append(f"notice.delivered not once per delivery: {delivered}")
    mails = [email.message_from_bytes(raw, policy=email.policy.default) for raw in list(stack.mail.messages)]
    sent_ids = Counter(str(m["Message-ID"]) for m in mails)
    expected_ids = {d["message_id"] for d in deliveries if d["channel"] == "email"}
    if set(sent_ids) != expected_ids:
        problems.append(f"emails {sorted(sent_ids)} for deliveries {sorted(expected_ids)}")
    resent = sum(c - 1 for c in sent_ids.values())  # the SMTP crash window: the same Message-ID again
    email_attempts = sum(d["attempts"] for d in deliveries if d["channel"] == "email")

    # ---- the audit chain holds
    async with pool.acquire() as conn:
        verdict = await verify(conn, stack.audit_key.encode())
    if not verdict.intact:
        problems.append(f"audit chain: {verdict.as_dict()}")

    # ---- the outage answers
    bad_probes = [p for p in result.probes if (p[1] != 503 or not p[2].isdigit()) and p[1] != 201]
    if bad_probes:
        problems.append(f"answers while PostgreSQL was down: {bad_probes}")

    retried_activities = await activity_retries(stack, cooperation_ids, project_ids)
    counts = {
        "lifecycles": n, "completed": stages.get("completed", 0),
        "seconds": round(result.seconds, 1),
        "faults": [f"{f.kind} {f.note}" if f.applied else f"{f.kind} (not reached)" for f in result.faults],
        "worker SIGKILLs": stack.supervisor.kills, "worker starts": stack.supervisor.starts,
        "worker exits on their own": stack.supervisor.exits,
        "acknowledged writes": len(client.writes), "attempts": client.attempts, "retries": client.retries,
        "503": client.unavailable, "429": client.busy, "409 in progress": client.in_progress,
        "no answer": client.refused_connections, "replayed": client.replayed,
        "violations (500, 503 without Retry-After)": len(client.violations),
        "probes during the PostgreSQL outage": [f"{p[0]} {p[1]} Retry-After {p[2]}" for p in result.probes],
        "audit events lost": len(lost), "audit events duplicated": len(twice),
        "rows": rows_found, "reconcile": report.summary(),
        "notices expected": len(expected_due), "notices missing": len(missing_notices),
        "notices duplicated": len(duplicate_notices), "emails accepted": len(mails),
        "emails resent with the same Message-ID": resent, "email delivery attempts": email_attempts,
        "activity attempts after a failure": retried_activities,
        "storm": result.storm,
        "audit chain": verdict.as_dict(), "problems": len(problems),
    }
    result.counts = counts
    line = "fault run " + json.dumps(counts, ensure_ascii=False, default=str)
    SUMMARIES.append(line)
    print("\n" + line, flush=True)
    assert not problems, "\n".join(problems)
    return counts


async def history_outline(client: Client, workflow_id: str) -> str:
    """One line per event: what tells a retried workflow task or update from a clean one."""
    lines = []
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        detail = ""
        if event.HasField("workflow_task_failed_event_attributes"):
            a = event.workflow_task_failed_event_attributes
            detail = f"cause {a.cause} {a.failure.message[:200]}"
        elif event.HasField("workflow_task_completed_event_attributes"):
            detail = event.workflow_task_completed_event_attributes.identity
        elif event.HasField("workflow_execution_update_accepted_event_attributes"):
            detail = event.workflow_execution_update_accepted_event_attributes.protocol_instance_id[:40]
        elif event.HasField("marker_recorded_event_attributes"):
            detail = event.marker_recorded_event_attributes.marker_name
        lines.append(f"{event.event_id:4} {event.event_time.ToDatetime().time()} {name} {detail}")
    return "\n".join(lines)


async def activity_retries(stack: Stack, cooperation_ids: list[str], project_ids: list[str]) -> int:
    """Activities run again after a failure (killed worker, PostgreSQL or SMTP away): the faults at work."""
    retried = 0
    for wid in [f"cooperation-{c}" for c in cooperation_ids] + [f"project-{p}" for p in project_ids]:
        async for event in stack.client.get_workflow_handle(wid).fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                attributes = event.activity_task_started_event_attributes
                if attributes.attempt > 1 and not attributes.last_failure.message.endswith(BENIGN_RETRY):
                    retried += 1
    return retried


async def fault_run(plan: Plan) -> dict[str, Any]:
    """Start a stack, run the plan, account for it, stop everything."""
    folder = Path(tempfile.mkdtemp(prefix="accord-faults-"))
    folder.chmod(0o755)  # the embedded PostgreSQL runs as its own user when the suite runs as root
    stack = Stack(folder)
    try:
        await stack.start()
        try:
            result = await run_faults(stack, plan)
            return await account(stack, result)
        except BaseException:
            print("\n" + stack.logs(), flush=True)
            raise
    finally:
        await stack.close()
        if not os.environ.get("ACCORD_FAULTS_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)


def plan_from_env(default: Plan) -> Plan:
    """`make faults`: ACCORD_FAULTS_LIFECYCLES, _SEED, _KILLS, _PG_OUTAGE, _SMTP_OUTAGE override the plan."""
    def number(name: str, value: float) -> float:
        return float(os.environ.get(f"ACCORD_FAULTS_{name}", value))
    return Plan(lifecycles=int(number("LIFECYCLES", default.lifecycles)), seed=int(number("SEED", default.seed)),
                kills=int(number("KILLS", default.kills)), pg_outage=number("PG_OUTAGE", default.pg_outage),
                temporal_restart=default.temporal_restart, smtp_outage=number("SMTP_OUTAGE", default.smtp_outage),
                storm=default.storm, patience=default.patience, stagger=default.stagger)

