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
import shutil
import signal
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiosmtpd.controller import Controller
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from db.passwords import set_password
from runtime.mail_sink import free_port
from tests.conftest import ALWAYS_OPEN, new_id
from tests.multiprocess_support import (WRITES_PER_LIFECYCLE, Cluster, Outcome, Process, account_writes, answers,
                                        eventually,
                                        lifecycle, make_team, owns_one, pollers, process_env, rss_mb, running_on,
                                        start, stop)
from tests.test_api_support import plain_failure

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
        team = await make_team(conn, "mp", suffix)
        officer, reviewer, leader = team.officer, team.reviewer, team.leader
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
            cluster.expected_writes = COOPERATIONS * WRITES_PER_LIFECYCLE

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
            assert len(cluster.writes) == COOPERATIONS * WRITES_PER_LIFECYCLE, f"{len(cluster.writes)} writes answered"
            assert min(cluster.per_api[0], cluster.per_api[1]) >= sum(cluster.per_api.values()) // 3, \
                f"requests per API {dict(cluster.per_api)}"

            # ---- every accepted action: one audit event
            written = await account_writes(pool, cluster.writes)
            assert not written.lost, f"writes without an audit event: {written.lost}"
            assert not written.twice, f"writes with more than one audit event: {written.twice}"
            assert not written.wrong_request, f"request ids differ: {written.wrong_request}"

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
