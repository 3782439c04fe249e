"""The measurements: first-page search latency, verify throughput, export rate and memory."""

from __future__ import annotations

import gc
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import asyncpg
import psutil

from api.routes.audit import _csv_lines
from bench.dataset import ACTION_NAMES, CITIES, COMMENTS, INDUSTRIES, Generator
from bench.load import BENCH_KEY
from db import audit_queries
from db.audit_chain import verify
from db.audit_queries import COLUMNS, AuditFilter
from domain.audit import OFFICE_TZ

PAGE = 100  # the API's default page size

# ---------------------------------------------------------------- search latency


@dataclass(frozen=True)
class QueryKind:
    key: str
    label: str
    make: Callable[[random.Random], AuditFilter]
    samples: int
    warmup: int
    budget_s: float = 600.0  # stop sampling after this long (slow kinds), keeping at least 3 samples
    seed: int = 0
    setting: str | None = None  # a session setting to try, e.g. a suggested fix


def office_months(first: datetime, last: datetime) -> list[tuple[datetime, datetime]]:
    """Whole calendar months in the office's time zone (what an auditor asks for) within the data."""
    month = first.astimezone(OFFICE_TZ).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    months = []
    while True:
        month = (month + timedelta(days=32)).replace(day=1)
        following = (month + timedelta(days=32)).replace(day=1)
        if following > last:
            return months
        months.append((month, following))


def query_kinds(generator: Generator, first: datetime, last: datetime, samples: int) -> list[QueryKind]:
    coops = [c.id for c in generator.cooperations]
    actors = [a.id for a in generator.actors]
    months = office_months(first, last) or [(first, last)]
    common_words = INDUSTRIES + CITIES + COMMENTS  # each in roughly 2-4 % of the events

    def actor_month(rng: random.Random) -> AuditFilter:
        since, until = rng.choice(months)
        return AuditFilter(actor_id=rng.choice(actors), since=since, until=until)

    def action(rng: random.Random) -> AuditFilter:
        return AuditFilter(action=rng.choice(ACTION_NAMES))

    return [
        QueryKind("cooperation", "one cooperation", lambda r: AuditFilter(cooperation_id=r.choice(coops)),
                  samples, 20, seed=1),
        QueryKind("actor_month", "one actor over one month (office calendar month)", actor_month, samples, 20,
                  seed=2),
        QueryKind("action", "one action type", action, samples, 20, budget_s=240, seed=3),
        # The same choices without the generic plan asyncpg's prepared statements end up with:
        # shows whether plan_cache_mode = force_custom_plan would fix the rare actions.
        QueryKind("action_custom_plan", "one action type, force_custom_plan (not the app's setting)", action,
                  samples, 20, seed=3, setting="plan_cache_mode = force_custom_plan"),
        QueryKind("q_common", "free text q, common word", lambda r: AuditFilter(q=r.choice(common_words)),
                  samples, 20, seed=4),
        # A pasted cooperation id: few matches, so the newest-first scan reads far back.
        QueryKind("q_rare", "free text q, rare (a cooperation id)", lambda r: AuditFilter(q=r.choice(coops)),
                  max(3, samples // 20), 1, budget_s=90, seed=5),
    ]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure_search(conn: asyncpg.Connection, kind: QueryKind, seed: int) -> dict[str, Any]:
    """First pages of `kind` for random choices, after a warm-up of the same kind."""
    if kind.setting:
        await conn.execute(f"SET {kind.setting}")
    try:
        return await _sample_search(conn, kind, random.Random(seed + kind.seed))
    finally:
        if kind.setting:
            await conn.execute(f"RESET {kind.setting.split('=')[0].strip()}")


async def _sample_search(conn: asyncpg.Connection, kind: QueryKind, rng: random.Random) -> dict[str, Any]:
    for _ in range(kind.warmup):
        await audit_queries.search(conn, kind.make(rng), PAGE, None)
    timings, rows, filters = [], [], []
    deadline = time.perf_counter() + kind.budget_s
    for _ in range(kind.samples):
        f = kind.make(rng)
        started = time.perf_counter()
        items, _ = await audit_queries.search(conn, f, PAGE, None)
        timings.append((time.perf_counter() - started) * 1000)
        rows.append(len(items))
        filters.append(f)
        if len(timings) >= 3 and time.perf_counter() > deadline:
            break
    slowest = filters[max(range(len(timings)), key=timings.__getitem__)]
    return {
        "label": kind.label, "samples": len(timings), "wanted_samples": kind.samples,
        "p50_ms": percentile(timings, 50), "p95_ms": percentile(timings, 95), "p99_ms": percentile(timings, 99),
        "max_ms": max(timings), "mean_rows": statistics.fmean(rows), "empty_pages": rows.count(0),
        "slowest_filter": slowest.as_dict(),
        # Prepared statements may switch to a generic plan after five runs: show both plans of the slowest.
        "plan_custom": await explain(conn, slowest, generic=False),
        "plan_generic": await explain(conn, slowest, generic=True),
    }


async def explain(conn: asyncpg.Connection, f: AuditFilter, generic: bool) -> str:
    """EXPLAIN ANALYZE of the very statement `search` runs (same WHERE builder), with the
    plan made for these values (custom) or for any values (generic, as a reused prepared statement)."""
    where, args = audit_queries._where(f, None)
    sql = f"SELECT {', '.join(COLUMNS)} FROM audit_events {where} ORDER BY seq DESC LIMIT {PAGE + 1}"
    # EXECUTE takes no bind parameters: the values go in as quoted literals, typed by PREPARE.
    values = ", ".join("'" + (v.isoformat() if isinstance(v, datetime) else str(v)).replace("'", "''") + "'"
                       for v in args)
    async with conn.transaction():
        mode = "force_generic_plan" if generic else "force_custom_plan"
        await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
        await conn.execute(f"PREPARE bench_explain AS {sql}")
        try:
            rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE bench_explain"
                                    + (f"({values})" if args else ""))
        finally:
            await conn.execute("DEALLOCATE bench_explain")
    return "\n".join(r[0] for r in rows)


# ---------------------------------------------------------------- verify


async def measure_verify(conn: asyncpg.Connection) -> dict[str, Any]:
    started = time.perf_counter()
    verdict = await verify(conn, BENCH_KEY)
    seconds = time.perf_counter() - started
    return {**verdict.as_dict(), "seconds": seconds, "events_per_s": verdict.events / seconds}


# ---------------------------------------------------------------- export


class PeakRss:
    """Samples this process's resident memory in a thread while the export runs."""

    def __init__(self, interval: float = 0.01) -> None:
        self.process, self.interval = psutil.Process(), interval
        self.baseline = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        gc.collect()
        self.baseline = self.peak = self.process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.interval)


async def measure_export(pool: asyncpg.Pool, rows: int, events: int) -> dict[str, Any]:
    """Export the newest `rows` events as CSV through the API's own generator."""
    async with pool.acquire() as conn:
        # seq and recorded_at rise together, so "since the time of seq X" is exactly the rows from X on.
        since = await conn.fetchval("SELECT recorded_at FROM audit_events WHERE seq = $1", events - rows + 1)
    services = SimpleNamespace(pool=pool)  # all `_csv_lines` uses of the app's Services
    size = lines = 0
    with PeakRss() as memory:
        started = time.perf_counter()
        async for chunk in _csv_lines(services, AuditFilter(since=since)):
            size += len(chunk)
            lines += chunk.count(b"\n")  # generated text has no line breaks inside fields
        seconds = time.perf_counter() - started
    return {
        "rows": rows, "lines": lines, "bytes": size, "seconds": seconds, "rows_per_s": rows / seconds,
        "rss_before_mb": memory.baseline / 2**20, "rss_peak_mb": memory.peak / 2**20,
        "rss_delta_mb": (memory.peak - memory.baseline) / 2**20,
    }


async def export_csv(pool: asyncpg.Pool, f: AuditFilter) -> bytes:
    """The whole export in memory: for the smoke test's small sizes only."""
    return b"".join([chunk async for chunk in _csv_lines(SimpleNamespace(pool=pool), f)])
