"""`python -m bench.reminders [--cooperations C] [--projects P] [--milestones M] [--timeout S]`.

Milestone reminders at scale on the Temporal dev server: C cooperations x P projects x M
milestones (10 x 100 x 10 = 10,000 by default), every notice falling due at one instant.
Measures that each is delivered once and how late the 99th percentile is. Prints a Markdown
table and writes bench/results/reminders-<timestamp>.json.

Notice times are hour-granular, so a timer cannot make 10,000 notices due at a chosen
second. The burst is made the way an office would make it: the milestones are all due today
under an organization policy that sends nothing, then a new policy version switches the
due-date notice on and every project is told (`tell_projects`). From that instant t0 each
project reloads its policies, recomputes its schedule, finds the due notice owed now and
delivers it: the production path of signal, reload, pure schedule, delivery activity, inbox
row and audit row. Lateness is `delivered_at - t0`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from temporalio.client import Client

from activities.reminders import ReminderConfig
from bench import load
from db.migrate import migrate
from db.pool import create_pool
from db.reminder_settings import PolicyScope, save_calendar, save_policy
from db.users import create_user
from domain.audit import OFFICE_TZ, Actor
from domain.calendar import WorkingCalendar
from domain.cooperation import (
    AgreementKind,
    CooperationCommand,
    CreateCooperation,
    CreateProject,
    DecideReviewStep,
    DraftAgreement,
    NegotiationEvent,
    PartyInput,
    RecordNegotiation,
    SignAgreement,
    SubmitAgreement,
)
from domain.project import MilestoneSpec
from domain.records import project_workflow_id
from domain.reminders import ReminderPolicy
from domain.templates import DEFAULT_REVIEW_CHAIN
from runtime.embedded import TemporalDevServer
from runtime.lifecycle import act_on_cooperation, create_cooperation
from runtime.reminders import tell_projects
from runtime.temporal import build_worker, connect
from workflows.project import ProjectWorkflow

RESULTS = Path(__file__).parent / "results"
TASK_QUEUE = "accord-bench-reminders"
DATABASE = "accord_bench_reminders"
POLL_SECONDS = 0.5
DESCRIBE_CONCURRENCY = 32
"""Bounds the describe calls of the settle phase, like `tell_projects` bounds its signals."""

LEAD = ("gov-bench", "Bench Municipal Government 基准市人民政府")
PARTNER = ("co-bench", "Bench Battery Holdings 基准电池控股")
DEPARTMENT = "Investment Promotion Bureau (bench)"
# Actors as the API builds them (domain/access.py checks them again in the workflows).
OFFICER = Actor(user_id="bench-officer", name="Bench Officer", role="liaison_officer", roles=("liaison_officer",),
                department=DEPARTMENT)
COUNSEL = Actor(user_id="bench-counsel", name="Bench Counsel", role="reviewer", roles=("reviewer",),
                department="Legal Affairs Office (bench)")
LEADER = Actor(user_id="bench-leader", name="Bench Director", role="leader", roles=("leader",),
               department=DEPARTMENT)

# Sends nothing, so milestones created due today stay quiet until the burst.
SILENT = ReminderPolicy(policy_id="bench-silent", before_working_days=[], on_due_date=False,
                        overdue_every_days=None, escalation=[])
# The burst: only the due-date notice, so each milestone owes exactly one notice.
DUE_ONLY = SILENT.model_copy(update={"policy_id": "bench-due", "on_due_date": True})

T = TypeVar("T")


@dataclass
class Options:
    cooperations: int = 10
    projects: int = 100
    """Per cooperation."""
    milestones: int = 10
    """Per project."""
    timeout: float = 900.0
    """Seconds to wait for every notice after t0; on expiry the figures cover what arrived."""
    results: Path = RESULTS
    quiet: bool = False

    @property
    def total_milestones(self) -> int:
        return self.cooperations * self.projects * self.milestones


# ---------------------------------------------------------------- the calendar (as in tests/conftest.py)

ALWAYS_OPEN = "bench: always open"
ALWAYS_OPEN_YEARS = range(2024, 2031)


def always_open_calendar() -> WorkingCalendar:
    """Every day a working day, so a milestone due today is owed whenever the bench runs.

    Copied from tests/conftest.py rather than imported: the bench must not depend on the tests.
    """
    days = {date(y, 1, 1) + timedelta(days=d) for y in ALWAYS_OPEN_YEARS for d in range(366)}
    return WorkingCalendar(name=ALWAYS_OPEN, covered_years=set(ALWAYS_OPEN_YEARS),
                           workdays={d for d in days if d.year in ALWAYS_OPEN_YEARS and d.weekday() >= 5})


def reminder_config() -> ReminderConfig:
    """Inbox only (no SMTP): the figure measures the engine, not a mail sink. Open all day."""
    return ReminderConfig(smtp=None, hour=0, until_hour=24, calendar_name=ALWAYS_OPEN)


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(options: Options) -> dict[str, Any]:
    """Start PostgreSQL and the dev server, measure, stop both, write the JSON; return the results.

    Synchronous on purpose: the embedded server must start before any event loop runs.
    """
    say = (lambda *_: None) if options.quiet else (lambda text: print(text, flush=True))
    postgres = load.server_for(None)
    folder = Path(tempfile.mkdtemp(prefix="accord-bench-temporal-"))
    # WAL pragmas, a SQLite file and ports of its own: TemporalDevServer, as `accord dev` runs it.
    temporal = TemporalDevServer(folder / "temporal.db", free_port(), free_port(), folder / "temporal.log")
    try:
        url = postgres.start(DATABASE)
        say(f"PostgreSQL in {postgres.folder}; Temporal dev server in {folder}")
        temporal.start()
        results = asyncio.run(_bench(url, temporal.address, options, say))
    finally:
        temporal.stop()
        postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)
    results["json"] = str(write_results(results, options.results))
    say(markdown(results))
    say(f"\nwritten to {results['json']}")
    return results


async def _bench(url: str, address: str, options: Options, say: Callable[[str], None]) -> dict[str, Any]:
    pool = await create_pool(url)  # the size `accord dev` uses (database_pool_size = 10)
    try:
        await prepare_database(pool)
        client = await connect(address)
        results: dict[str, Any] = {"environment": await environment(pool), "shape": shape(options)}
        async with build_worker(client, pool, TASK_QUEUE, reminders=reminder_config()):
            await register_cast(pool, options)
            project_ids, results["setup"] = await set_up(client, options, say)
            results["burst"] = await burst(client, pool, project_ids, options, say)
        return results
    finally:
        await pool.close()


async def prepare_database(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await migrate(conn)
        async with conn.transaction():
            await save_calendar(conn, always_open_calendar(), "every day a working day", "bench")


def shape(options: Options) -> dict[str, Any]:
    return {"cooperations": options.cooperations, "projects_per_cooperation": options.projects,
            "milestones_per_project": options.milestones,
            "projects": options.cooperations * options.projects, "milestones": options.total_milestones}


async def environment(pool: asyncpg.Pool) -> dict[str, Any]:
    async with pool.acquire() as conn:
        version = await conn.fetchval("SHOW server_version")
    # Other work on the machine skews every figure: record how busy it was.
    return {"postgres": version, "python": platform.python_version(), "cpus": os.cpu_count(),
            "machine": platform.machine(), "load_average": os.getloadavg(), "pool_size": pool.get_max_size()}


# ---------------------------------------------------------------- the cast


def officer_name(cooperation: int) -> str:
    """One liaison officer per cooperation: the recipient of its projects' notices."""
    return f"Bench Officer {cooperation:03d}"


def project_ids(options: Options) -> list[str]:
    return [project_id(c, p) for c in range(options.cooperations) for p in range(options.projects)]


def project_id(cooperation: int, project: int) -> str:
    return f"{cooperation_id(cooperation)}-p{project:03d}"


def cooperation_id(cooperation: int) -> str:
    return f"bench-c{cooperation:03d}"


async def register_cast(pool: asyncpg.Pool, options: Options) -> None:
    """The two organizations, the officers, and the silent policies.

    The silent policy comes first: a project created under the default policy would be
    reminded of its milestones at once, before the burst.
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            "INSERT INTO organizations (id, name, kind, created_by) VALUES ($1, $2, $3, 'bench')",
            [(*LEAD, "government"), (*PARTNER, "company")])
        for c in range(options.cooperations):
            await create_user(conn, f"bench-officer-{c:03d}", officer_name(c), "liaison_officer", DEPARTMENT)
        await save_policy(conn, PolicyScope.organization, LEAD[0], SILENT, "bench: silent until the burst", "bench")


# ---------------------------------------------------------------- setting up


@dataclass
class Cooperation:
    """One bench cooperation and its request counter (request ids must be unique per action)."""

    client: Client
    index: int
    _requests: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def id(self) -> str:
        return cooperation_id(self.index)

    @property
    def framework(self) -> str:
        return f"fw-{self.id}"

    @property
    def investment(self) -> str:
        return f"inv-{self.id}"

    def project_id(self, p: int) -> str:
        return project_id(self.index, p)

    async def act(self, command: CooperationCommand, actor: Actor = OFFICER) -> None:
        await act_on_cooperation(self.client, self.id, actor, command, f"{self.id}-r{next(self._requests)}")


async def set_up(client: Client, options: Options, say: Callable[[str], None]) -> tuple[list[str], dict[str, Any]]:
    """Cooperations to in_delivery, then their projects, then wait for every project to be idle.

    Each phase is timed on its own. Projects are created concurrently across cooperations and
    one at a time within each (a cooperation workflow takes its updates one at a time anyway).
    """
    today = datetime.now(OFFICE_TZ).date()
    cooperations = [Cooperation(client, c) for c in range(options.cooperations)]
    timings: dict[str, Any] = {"due_date": today.isoformat()}
    say(f"setup: {options.cooperations} cooperations to in_delivery ...")
    timings["cooperations_seconds"] = await timed(gather_all(bring_to_delivery(c) for c in cooperations))
    say(f"setup: {options.cooperations * options.projects:,} projects with {options.total_milestones:,} milestones "
        f"due {today} ...")
    timings["projects_seconds"] = await timed(gather_all(
        create_projects(c, options.projects, options.milestones, today) for c in cooperations))
    timings["projects_per_s"] = options.cooperations * options.projects / timings["projects_seconds"]
    ids = project_ids(options)
    say("setup: waiting until every project has loaded its reminder setup ...")
    timings["settle_seconds"] = await timed(settle(client, ids))
    return ids, timings


async def timed(work: Awaitable[Any]) -> float:
    started = time.perf_counter()
    await work
    return time.perf_counter() - started


async def gather_all(work: Iterable[Awaitable[T]]) -> list[T]:
    return await asyncio.gather(*work)


async def bring_to_delivery(coop: Cooperation) -> None:
    """Create, negotiate, sign the framework and the investment agreement: the stage is then in_delivery."""
    await create_cooperation(coop.client, TASK_QUEUE, coop.id, creation(), OFFICER, f"create-{coop.id}")
    await coop.act(RecordNegotiation(event=NegotiationEvent(
        event_id="neg-1", kind="meeting", occurred_on=date(2024, 3, 12), place="City Hall, room 301",
        participants=["Mayor Chen", "Chairwoman Liu"], summary="First round on land and tax terms.")))
    await sign_through(coop, coop.framework, AgreementKind.framework, date(2024, 6, 3))
    await sign_through(coop, coop.investment, AgreementKind.investment, date(2024, 9, 18))


def creation() -> CreateCooperation:
    return CreateCooperation(
        title="Regional headquarters and battery plant 区域总部及电池工厂", lead_organization_id=LEAD[0],
        lead_organization_name=LEAD[1], partner_organization_id=PARTNER[0], partner_organization_name=PARTNER[1],
        areas=["new energy"], liaison_officer=OFFICER.name, department=DEPARTMENT, started_on=date(2024, 3, 1),
        target_signing_date=date(2024, 6, 30), description="Bench cooperation.")


def parties() -> list[PartyInput]:
    return [
        PartyInput(organization_id=LEAD[0], organization_name=LEAD[1], signatory_name="Mayor Chen",
                   signatory_title="Mayor"),
        PartyInput(organization_id=PARTNER[0], organization_name=PARTNER[1], signatory_name="Chairwoman Liu",
                   signatory_title="Chair of the Board"),
    ]


async def sign_through(coop: Cooperation, agreement_id: str, kind: AgreementKind, on: date) -> None:
    """Draft, submit, approve every default review step, signed by both parties."""
    await coop.act(DraftAgreement(agreement_id=agreement_id, agreement_kind=kind, title=f"{kind.value} agreement",
                                  parties=parties()))
    await coop.act(SubmitAgreement(agreement_id=agreement_id))
    for step, actor in zip(DEFAULT_REVIEW_CHAIN, (COUNSEL, LEADER), strict=True):
        await coop.act(DecideReviewStep(agreement_id=agreement_id, step=step, decision="approve"), actor=actor)
    for organization_id in (LEAD[0], PARTNER[0]):
        await coop.act(SignAgreement(agreement_id=agreement_id, organization_id=organization_id, signed_on=on))


async def create_projects(coop: Cooperation, projects: int, milestones: int, due: date) -> None:
    for p in range(projects):
        await coop.act(CreateProject(
            project_id=coop.project_id(p), agreement_id=coop.investment, title=f"Project {p} of {coop.id}",
            committed_investment=Decimal("100000000.00"), responsible_department=DEPARTMENT,
            # No milestone owner: the due notice goes to the liaison officer, a user of the bench.
            responsible_officer=officer_name(coop.index),
            milestones=[MilestoneSpec(milestone_id=f"m{m:02d}", name=f"Milestone {m}", due_date=due)
                        for m in range(milestones)]))


async def settle(client: Client, project_ids: list[str]) -> None:
    """Wait until no project has a workflow task or activity pending.

    A new project's first turn loads its reminder setup; the burst must find every project
    idle, so that it measures the reaction to the signal and not the tail of the setup.
    """
    gate = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

    async def idle(project_id: str) -> None:
        handle = client.get_workflow_handle_for(ProjectWorkflow.run, project_workflow_id(project_id))
        while True:
            async with gate:
                description = await handle.describe()
            raw = description.raw_description
            if description.history_length > 3 and not raw.pending_activities \
                    and not raw.HasField("pending_workflow_task"):
                return
            await asyncio.sleep(POLL_SECONDS)

    await gather_all(idle(p) for p in project_ids)


# ---------------------------------------------------------------- the burst


async def burst(client: Client, pool: asyncpg.Pool, project_ids: list[str], options: Options,
                say: Callable[[str], None]) -> dict[str, Any]:
    """Switch the due-date notice on, tell every project at t0, wait for every delivery, measure."""
    async with pool.acquire() as conn, conn.transaction():
        await save_policy(conn, PolicyScope.organization, LEAD[0], DUE_ONLY, "bench: the burst", "bench")
    say(f"burst: telling {len(project_ids):,} projects ...")
    t0 = datetime.now(timezone.utc)
    started = time.perf_counter()
    signalled = await tell_projects(client, project_ids)
    signal_seconds = time.perf_counter() - started
    complete = await wait_for_deliveries(pool, project_ids, options.total_milestones, options.timeout, say)
    waited = time.perf_counter() - started
    async with pool.acquire() as conn:
        figures = await delivery_figures(conn, project_ids, t0)
    return {"t0": t0.isoformat(), "signalled": signalled, "signal_seconds": signal_seconds,
            "wait_seconds": waited, "timed_out": not complete, "expected": options.total_milestones, **figures,
            "delivered_once": delivered_once(figures, options.total_milestones),
            "all_in_burst": figures["sent_in_burst"] == options.total_milestones}


def delivered_once(figures: dict[str, Any], expected: int) -> bool:
    """Every milestone's notice sent, on exactly one row (one recipient, inbox only), no duplicate."""
    return (figures["notices_sent"] == expected and figures["rows"] == expected and figures["sent"] == expected
            and figures["duplicates"] == 0)


async def wait_for_deliveries(pool: asyncpg.Pool, project_ids: list[str], expected: int, timeout: float,
                              say: Callable[[str], None]) -> bool:
    """Poll every 0.5 s until `expected` rows are sent; False if the timeout came first."""
    deadline = time.monotonic() + timeout
    reported = time.monotonic()
    while True:
        async with pool.acquire() as conn:
            sent = await conn.fetchval(
                "SELECT count(*) FROM notice_deliveries WHERE project_id = ANY($1) AND status = 'sent'", project_ids)
        if sent >= expected:
            return True
        if time.monotonic() > deadline:
            say(f"burst: timed out with {sent:,} of {expected:,} sent")
            return False
        if time.monotonic() - reported >= 10:
            reported = time.monotonic()
            say(f"burst: {sent:,} of {expected:,} sent")
        await asyncio.sleep(POLL_SECONDS)


async def delivery_figures(conn: asyncpg.Connection, project_ids: list[str], t0: datetime) -> dict[str, Any]:
    """Counts, duplicates and lateness, all from the delivery rows, the inbox and the audit trail."""
    rows = await conn.fetch(
        "SELECT notice_key, recipient_id, channel, status, attempts, dispatched_at, delivered_at "
        "FROM notice_deliveries WHERE project_id = ANY($1)", project_ids)
    # Lateness is measured on what the burst dispatched; anything earlier is counted apart.
    sent = [r for r in rows if r["status"] == "sent" and r["dispatched_at"] >= t0]
    early = [r for r in rows if r["dispatched_at"] < t0]
    per_delivery: dict[tuple[str, str | None, str], int] = {}
    for r in rows:
        key = (r["notice_key"], r["recipient_id"], r["channel"])
        per_delivery[key] = per_delivery.get(key, 0) + 1
    lateness = [(r["delivered_at"] - t0).total_seconds() for r in sent]
    dispatch = [(r["dispatched_at"] - t0).total_seconds() for r in sent]
    handover = [(r["delivered_at"] - r["dispatched_at"]).total_seconds() for r in sent]
    return {
        "rows": len(rows), "sent": sum(r["status"] == "sent" for r in rows), "sent_in_burst": len(sent),
        "early": len(early), "failed": sum(r["status"] == "failed" for r in rows),
        "pending": sum(r["status"] == "pending" for r in rows),
        "notices": len({r["notice_key"] for r in rows}),
        "notices_sent": len({r["notice_key"] for r in rows if r["status"] == "sent"}),
        "duplicates": sum(n - 1 for n in per_delivery.values()),
        "retried": sum(r["attempts"] > 1 for r in rows),
        "kinds": sorted({r["notice_key"].rsplit("/", 1)[1] for r in rows}),
        "inbox_messages": await conn.fetchval(
            "SELECT count(*) FROM inbox_messages WHERE project_id = ANY($1) AND kind = 'notice'", project_ids),
        "audit_events": await conn.fetchval(
            "SELECT count(*) FROM audit_events WHERE project_id = ANY($1) AND action = 'notice.delivered'",
            project_ids),
        "lateness_s": summary(lateness),
        "dispatch_after_t0_s": summary(dispatch),
        "delivery_after_dispatch_s": summary(handover),
        "throughput_per_s": len(sent) / max(lateness) if lateness and max(lateness) > 0 else None,
        "last_delivered_s": max(lateness) if lateness else None,
    }


def percentile(values: list[float], p: float) -> float:
    """Nearest rank on the sorted values (as bench.measure does)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "max": max(values)}


# ---------------------------------------------------------------- the report


def write_results(results: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"reminders-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(results, indent=2, default=str, ensure_ascii=False), encoding="utf-8")
    return path


def markdown(results: dict[str, Any]) -> str:
    s, setup, b = results["shape"], results["setup"], results["burst"]
    verdict = "yes" if b["delivered_once"] else "**no**"
    lines = [
        f"\n### Reminders: {s['milestones']:,} milestones due at one instant "
        f"({s['cooperations']} cooperations x {s['projects_per_cooperation']} projects x "
        f"{s['milestones_per_project']} milestones, inbox only, silent until an organization policy switches on)\n",
        f"Setup: cooperations to in_delivery {setup['cooperations_seconds']:.1f} s, "
        f"{s['projects']:,} projects {setup['projects_seconds']:.1f} s ({setup['projects_per_s']:.1f}/s), "
        f"settle {setup['settle_seconds']:.1f} s. Signalling {b['signalled']:,} projects took "
        f"{b['signal_seconds']:.2f} s.\n",
        "| Delivery | figure |", "|---|---:|",
        f"| notices expected / delivered (distinct keys sent) | {b['expected']:,} / {b['notices_sent']:,} |",
        f"| delivery rows (sent / failed / pending) | {b['rows']:,} ({b['sent']:,} / {b['failed']:,} / "
        f"{b['pending']:,}) |",
        f"| duplicates per (notice, recipient, channel) | {b['duplicates']} |",
        f"| sent in the burst / dispatched before t0 | {b['sent_in_burst']:,} / {b['early']:,} |",
        f"| inbox messages / audit events `notice.delivered` | {b['inbox_messages']:,} / {b['audit_events']:,} |",
        f"| deliveries retried (attempts > 1) | {b['retried']} |",
        f"| all delivered once | {verdict}{' (timed out)' if b['timed_out'] else ''} |",
        f"| throughput (sent in the burst / last lateness) | {fmt(b['throughput_per_s'], '{:,.0f}')} notices/s |",
        "", "| Seconds after t0 | p50 | p95 | p99 | max |", "|---|---:|---:|---:|---:|",
    ]
    for label, key in (("**lateness: delivered_at**", "lateness_s"), ("workflow dispatched it", "dispatch_after_t0_s"),
                       ("delivered after dispatch", "delivery_after_dispatch_s")):
        f = b[key] or {}
        lines.append(f"| {label} | " + " | ".join(fmt(f.get(p), "{:.2f}") for p in ("p50", "p95", "p99", "max")) + " |")
    return "\n".join(lines)


def fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reminders", description=__doc__.split("\n\n")[1])
    defaults = Options()
    parser.add_argument("--cooperations", type=int, default=defaults.cooperations,
                        help=f"cooperations (default {defaults.cooperations})")
    parser.add_argument("--projects", type=int, default=defaults.projects,
                        help=f"projects per cooperation (default {defaults.projects})")
    parser.add_argument("--milestones", type=int, default=defaults.milestones,
                        help=f"milestones per project, at most 100 (default {defaults.milestones})")
    parser.add_argument("--timeout", type=float, default=defaults.timeout,
                        help=f"seconds to wait for every delivery after t0 (default {defaults.timeout:.0f})")
    args = parser.parse_args(argv)
    if min(args.cooperations, args.projects, args.milestones) < 1 or args.milestones > 100:
        parser.error("--cooperations, --projects and --milestones must be positive; --milestones at most 100")
    if args.projects > 999 or args.cooperations > 999:
        parser.error("--cooperations and --projects at most 999 (three-digit ids)")
    started = time.perf_counter()
    results = run(Options(cooperations=args.cooperations, projects=args.projects, milestones=args.milestones,
                          timeout=args.timeout))
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0 if results["burst"]["delivered_once"] else 1


if __name__ == "__main__":
    sys.exit(main())
