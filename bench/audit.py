"""`python -m bench.audit [--events N] [--keep DIR]`: the audit trail at scale.

Fills an embedded PostgreSQL with N generated events (10 million by default, or
ACCORD_BENCH_EVENTS), then measures first-page search latency, chain verification
throughput, and CSV export rate and memory. Prints a Markdown table and writes
bench/results/audit-<timestamp>.json.

With --keep DIR the server's data stays in DIR and a dataset of the same size is
reused on the next run, so the 10M load is paid once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import asyncpg

from bench import load, measure
from bench.dataset import Generator, Shape
from db.pool import create_pool

RESULTS = Path(__file__).parent / "results"
TARGET_P95_MS = 50.0


@dataclass
class Options:
    shape: Shape = field(default_factory=Shape)
    keep: Path | None = None
    samples: int = 200                                # random choices per search kind
    export_rows: tuple[int, ...] = (100_000, 1_000_000)
    results: Path = RESULTS
    quiet: bool = False


def run(options: Options) -> dict[str, Any]:
    """Start the server, load (or reuse) the dataset, measure, write the JSON; return the results.

    Synchronous on purpose: the embedded server must start before any event loop runs.
    """
    say = (lambda *_: None) if options.quiet else (lambda text: print(text, flush=True))
    server = load.server_for(options.keep)
    name = load.database_name(options.shape)
    say(f"PostgreSQL in {server.folder} (database {name})")
    url = server.start(name)
    try:
        results = asyncio.run(_bench(url, server, name, options, say))
        results["disk_bytes"] = server.disk_bytes()
    finally:
        server.stop()
    results["json"] = str(write_results(results, options.results))
    say(markdown(results))
    say(f"\nwritten to {results['json']}")
    return results


async def _bench(url: str, server: load.Server, name: str, options: Options, say) -> dict[str, Any]:
    pool = await create_pool(url, min_size=1, max_size=4)
    try:
        async with pool.acquire() as conn:
            dataset = await load.dataset_ready(conn, options.shape)
        if dataset is None:
            await pool.close()
            await load.reset_database(server.admin_url, name)  # a kept folder may hold a half-done load
            say(f"generating {options.shape.events:,} events ...")
            dataset = await load.load(url, options.shape, progress=say)
            pool = await create_pool(url, min_size=1, max_size=4)
            say(f"loaded in {dataset['load_seconds']:.0f} s")
        else:
            say(f"reusing the {options.shape.events:,} events loaded at {dataset['loaded_at']:%Y-%m-%d %H:%M}")
        return await _measure(pool, options, dataset, say)
    finally:
        await pool.close()


async def _measure(pool: asyncpg.Pool, options: Options, dataset: dict, say) -> dict[str, Any]:
    events = options.shape.events
    # The cast (cooperation and actor ids) is rebuilt from the seed; the time span comes from the load.
    generator = Generator(options.shape, datetime.now(timezone.utc))
    kinds = measure.query_kinds(generator, dataset["first_recorded_at"], dataset["last_recorded_at"],
                                options.samples)
    results: dict[str, Any] = {"environment": await environment(pool), "dataset": dataset, "searches": {}}
    async with pool.acquire() as conn:
        results["database_bytes"] = await conn.fetchval("SELECT pg_database_size(current_database())")
        for kind in kinds:
            say(f"search: {kind.label} ({kind.samples} samples) ...")
            results["searches"][kind.key] = await measure.measure_search(conn, kind, options.shape.seed)
        say("verify: the whole chain ...")
        results["verify"] = await measure.measure_verify(conn)
    results["exports"] = []
    for rows in sorted({min(r, events) for r in options.export_rows}):
        say(f"export: {rows:,} rows as CSV ...")
        results["exports"].append(await measure.measure_export(pool, rows, events))
    return results


async def environment(pool: asyncpg.Pool) -> dict[str, Any]:
    async with pool.acquire() as conn:
        settings = {r["name"]: r["setting"] + (r["unit"] or "") for r in await conn.fetch(
            "SELECT name, setting, unit FROM pg_settings WHERE name IN "
            "('shared_buffers', 'work_mem', 'effective_cache_size', 'max_parallel_workers_per_gather')")}
        version = await conn.fetchval("SHOW server_version")
    # Other work on the machine skews every figure: record how busy it was.
    return {"postgres": version, "settings": settings, "python": platform.python_version(),
            "cpus": os.cpu_count(), "machine": platform.machine(), "load_average": os.getloadavg()}


# ---------------------------------------------------------------- the report


def write_results(results: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"audit-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(results, indent=2, default=str, ensure_ascii=False), encoding="utf-8")
    return path


def markdown(results: dict[str, Any]) -> str:
    d = results["dataset"]
    lines = [
        f"\n### Audit trail: {d['events']:,} events "
        f"({d['first_recorded_at']:%Y-%m-%d} .. {d['last_recorded_at']:%Y-%m-%d})\n",
        f"Load: {d['load_seconds']:.0f} s (COPY {d['copy_seconds']:.0f} s = "
        f"{d['events'] / d['copy_seconds']:,.0f} events/s, indexes {d['index_seconds']:.0f} s, "
        f"vacuum/analyze {d['vacuum_seconds']:.0f} s). "
        f"Database {results['database_bytes'] / 2**30:.2f} GiB, data folder {results['disk_bytes'] / 2**30:.2f} GiB.\n",
        "| First page (limit 100) | samples | p50 ms | p95 ms | p99 ms | max ms | rows/page | p95 < 50 ms |",
        "|---|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for s in results["searches"].values():
        ok = "yes" if s["p95_ms"] < TARGET_P95_MS else "**no**"
        lines.append(f"| {s['label']} | {s['samples']} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | "
                     f"{s['p99_ms']:.1f} | {s['max_ms']:.1f} | {s['mean_rows']:.0f} | {ok} |")
    v = results["verify"]
    lines += [
        "", "| Throughput | figure |", "|---|---:|",
        f"| verify, whole chain ({v['events']:,} events, intact: {v['intact']}) | "
        f"{v['events_per_s']:,.0f} events/s ({v['seconds']:.0f} s) |",
    ]
    for e in results["exports"]:
        lines.append(f"| CSV export {e['rows']:,} rows ({e['bytes'] / 2**20:,.0f} MiB) | "
                     f"{e['rows_per_s']:,.0f} rows/s ({e['seconds']:.1f} s), peak RSS +{e['rss_delta_mb']:.1f} MiB "
                     f"(over {e['rss_before_mb']:.0f} MiB) |")
    lines += slow_plans(results["searches"])
    return "\n".join(lines)


def slow_plans(searches: dict[str, Any], head: int = 12) -> list[str]:
    """For each kind over the target: its slowest sample's plans, custom and generic, abridged."""
    lines = []
    for s in searches.values():
        if s["p95_ms"] < TARGET_P95_MS:
            continue
        lines += ["", f"#### Over target: {s['label']}, slowest sample {s['slowest_filter']}"]
        for kind in ("custom", "generic"):
            plan = s[f"plan_{kind}"].splitlines()
            lines += ["", f"{kind} plan (first {head} of {len(plan)} lines, then the totals):", "```",
                      *plan[:head], "...", *plan[-2:], "```"]
    return lines


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("ACCORD_BENCH_EVENTS", 10_000_000)),
                        help="events to generate (default 10,000,000 or $ACCORD_BENCH_EVENTS)")
    parser.add_argument("--keep", type=Path, help="keep the server's data here and reuse a dataset of this size")
    parser.add_argument("--samples", type=int, default=200, help="random choices per search kind (default 200)")
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be positive")
    started = time.perf_counter()
    run(Options(shape=replace(Shape(), events=args.events), keep=args.keep, samples=args.samples))
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
