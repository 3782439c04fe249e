"""`python -m bench.lifecycle`: staff actions, lifecycles and reads against the floor, in one run.

On the embedded default (embedded PostgreSQL, the Temporal dev server with the WAL pragmas),
with `accord worker` and `accord api` as real processes (bench.cluster):

1. the floor (bench.floor): bare Update, Update + local activity, Update + activity, INSERT+COMMIT;
2. whole lifecycles (bench.actions) through the HTTP API at each number of concurrent clients,
   every action timed; the actions at one client are the staff-action latency; next to each
   level, the same number of bare Updates at the same concurrency on trivial workflows;
3. reads (bench.reads) at growing read-model sizes (COPY-loaded): the cooperation list with
   each filter and paging, and a cooperation's page;
4. peak RSS (VmHWM) and CPU time of the worker, the API and the floor's worker.

Prints a Markdown table and writes bench/results/lifecycle-<timestamp>.json. Asserts nothing
about speed; exits 1 if a lifecycle failed or did not finish.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client

from bench import actions, floor, reads
from bench.cluster import FLOOR_QUEUE, Cluster, new_cluster
from db.pool import create_pool

RESULTS = Path(__file__).parent / "results"


@dataclass
class Options:
    concurrency: list[int] = field(default_factory=lambda: [1, 8, 64])
    lifecycles: list[int] = field(default_factory=lambda: [8, 16, 64])
    """Lifecycles run at each concurrency level (at least one per client)."""
    floor_samples: int = 200
    read_sizes: list[int] = field(default_factory=lambda: [1_000, 10_000, 100_000])
    read_samples: int = 40
    results: Path = RESULTS
    quiet: bool = False


def run(options: Options) -> dict[str, Any]:
    """Start everything, measure, stop everything, write the JSON; return the results."""
    say = (lambda *_: None) if options.quiet else (lambda text: print(text, flush=True))
    cluster = new_cluster()
    try:
        cluster.start_servers()  # synchronous: the embedded server starts before any event loop
        results = asyncio.run(_bench(cluster, options, say))
    except BaseException:
        for child in cluster.children.values():
            print(f"--- {child.name} (last lines of {child.log})\n{child.tail()}", file=sys.stderr)
        raise
    finally:
        cluster.stop()
    results["json"] = str(write_results(results, options.results))
    say(markdown(results))
    say(f"\nwritten to {results['json']}")
    return results


async def _bench(cluster: Cluster, options: Options, say: Callable[[str], None]) -> dict[str, Any]:
    await cluster.prepare_database()
    pool = await create_pool(cluster.owner_url, max_size=4)
    client = await Client.connect(cluster.temporal_address)
    results: dict[str, Any] = {"options": {"concurrency": options.concurrency, "lifecycles": options.lifecycles,
                                           "floor_samples": options.floor_samples, "read_sizes": options.read_sizes,
                                           "read_samples": options.read_samples},
                               "processes": "accord worker, accord api (uvicorn) and the floor's worker each run as "
                                            "a process of their own; this process only plays the clients"}
    try:
        say("starting accord worker, accord api and the floor's worker ...")
        await cluster.start_processes(client)
        results["environment"] = await environment(pool)
        say("floor: bare Updates, Updates with a local activity and with an activity, INSERT+COMMIT ...")
        results["floor"] = await measure_floor(client, pool, options.floor_samples)
        results["memory_after_floor"] = cluster.memory()
        results["throughput"] = []
        all_cooperations: list[str] = []
        suffix = uuid.uuid4().hex[:6]
        organizations = None
        for level, (concurrency, count) in enumerate(zip(options.concurrency, options.lifecycles, strict=True)):
            count = max(count, concurrency)
            say(f"lifecycles: {count} at {concurrency} concurrent clients ...")
            staffs = [(await actions.make_staff(pool, cluster.api_url, f"{suffix}-{level}-{c}"))[0]
                      for c in range(concurrency)]
            if organizations is None:
                await actions.register_organizations(staffs[0], suffix)
                organizations = (staffs[0].government, staffs[0].park, staffs[0].company)
            for s in staffs:
                s.government, s.park, s.company = organizations
            cpu_before = cluster.cpu_snapshot()
            try:
                phase = await lifecycles(staffs, count, results["environment"])
                phase["cpu_seconds"] = cpu_used(cpu_before, cluster.cpu_snapshot())
            finally:
                for s in staffs:
                    await actions.close_staff(s)
            all_cooperations += phase.pop("cooperation_ids")
            cluster.check_alive()
            say(f"  bare Updates: {phase['actions']} at {concurrency} concurrent clients ...")
            cpu_before = cluster.cpu_snapshot()
            phase["bare_updates"] = await floor.bare_update_rate(client, FLOOR_QUEUE, concurrency, phase["actions"])
            phase["bare_updates"]["cpu_seconds"] = cpu_used(cpu_before, cluster.cpu_snapshot())
            phase["actions_vs_bare_updates"] = phase["actions_per_minute"] / phase["bare_updates"]["per_minute"]
            phase["memory"] = cluster.memory()
            results["throughput"].append(phase)
        results["latency"] = results["throughput"][0]["latency"] if results["throughput"] else None
        say("waiting for every cooperation to complete (its projects tell it) ...")
        results["finished"] = await finished(pool, all_cooperations)
        results["reads"] = await measure_reads(cluster, pool, options, say)
        results["memory"] = cluster.memory()
        results["ratios"] = ratios(results)
        return results
    finally:
        await pool.close()


def cpu_used(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (after[k] - before[k]) if after.get(k) is not None and before.get(k) is not None else None
            for k in before}


async def environment(pool: asyncpg.Pool) -> dict[str, Any]:
    async with pool.acquire() as conn:
        version = await conn.fetchval("SHOW server_version")
        settings = {r["name"]: r["setting"] for r in await conn.fetch(
            "SELECT name, setting FROM pg_settings WHERE name IN ('shared_buffers', 'synchronous_commit', 'fsync')")}
    # Other work on the machine skews every figure: record how busy it was.
    return {"postgres": version, "postgres_settings": settings, "python": platform.python_version(),
            "cpus": os.cpu_count(), "machine": platform.machine(), "load_average_at_start": os.getloadavg(),
            "started_at": datetime.now().isoformat(timespec="seconds")}


def stats(values: list[float]) -> dict[str, Any]:
    return {"samples": len(values), "p50_ms": reads.percentile(values, 50), "p95_ms": reads.percentile(values, 95),
            "p99_ms": reads.percentile(values, 99), "max_ms": max(values) if values else None}


async def measure_floor(client: Client, pool: asyncpg.Pool, samples: int) -> dict[str, Any]:
    figures = {kind: stats(await floor.update_latencies(client, FLOOR_QUEUE, kind, samples)) for kind in floor.KINDS}
    figures["insert_commit"] = stats(await floor.commit_latencies(pool, samples))
    figures["floor_p50_ms"] = figures["bare"]["p50_ms"] + figures["insert_commit"]["p50_ms"]
    figures["load_average"] = os.getloadavg()
    return figures


async def lifecycles(staffs: list[actions.Staff], count: int, env: dict[str, Any]) -> dict[str, Any]:
    """`count` lifecycles shared by len(staffs) clients, each client one lifecycle at a time."""
    numbers = itertools.count()
    done: list[str] = []
    failures: list[str] = []
    load_before = os.getloadavg()

    async def client(staff: actions.Staff) -> None:
        while (n := next(numbers)) < count:
            try:
                done.append(await actions.lifecycle(staff, n))
            except actions.ActionFailed as error:
                failures.append(str(error))

    started = time.perf_counter()
    await asyncio.gather(*(client(s) for s in staffs))
    seconds = time.perf_counter() - started
    samples = [s for staff in staffs for s in staff.samples]
    by_kind: dict[str, list[float]] = {}
    for s in samples:
        by_kind.setdefault(s.kind, []).append(s.ms)
    return {"concurrency": len(staffs), "lifecycles": count, "completed": len(done), "failures": failures[:20],
            "failed": len(failures), "seconds": seconds, "actions": len(samples),
            "lifecycles_per_minute": len(done) / seconds * 60, "actions_per_minute": len(samples) / seconds * 60,
            "latency": {"all": stats([s.ms for s in samples]),
                        "by_kind": {k: stats(v) for k, v in sorted(by_kind.items())}},
            "load_average_before": load_before, "load_average_after": os.getloadavg(), "cooperation_ids": done}


async def finished(pool: asyncpg.Pool, cooperation_ids: list[str], timeout: float = 120) -> dict[str, Any]:
    """Every cooperation completed (its last project's closing signal completes it), every project too."""
    deadline = time.monotonic() + timeout
    while True:
        stages = await actions.stages(pool, cooperation_ids)
        if stages.get("completed", 0) == len(cooperation_ids) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    projects = await actions.projects_by_status(pool, cooperation_ids)
    events = await pool.fetchval(
        "SELECT count(*) FROM audit_events WHERE cooperation_id = ANY($1) AND outcome = 'succeeded'", cooperation_ids)
    return {"cooperations": len(cooperation_ids), "stages": stages, "projects": projects, "audit_events": events,
            "all_completed": stages.get("completed", 0) == len(cooperation_ids)
            and projects.get("completed", 0) == actions.PROJECTS * len(cooperation_ids)}


async def measure_reads(cluster: Cluster, pool: asyncpg.Pool, options: Options,
                        say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Grow the read model through each size; at each, the reads as a liaison officer of one department."""
    from db.users import create_user, issue_token

    async with pool.acquire() as conn:
        user = await create_user(conn, f"bench-reader-{uuid.uuid4().hex[:6]}", "Bench Reader", ["liaison_officer"],
                                 actions.DEPARTMENT)
        token = await issue_token(conn, user.id, "bench")
    figures = []
    async with actions.http_client(cluster.api_url, token) as http:
        for first, count in reads.chunks(max(options.read_sizes), options.read_sizes):
            say(f"reads: loading cooperations {first:,} .. {first + count - 1:,} with COPY ...")
            loaded = await reads.load_step(cluster.owner_url, first, count, actions.DEPARTMENT)
            say(f"  loaded in {loaded['seconds']:.1f} s; measuring reads ...")
            targets = await reads.targets(cluster.owner_url, actions.DEPARTMENT)
            measured = await reads.measure_reads(http, targets, options.read_samples)
            figures.append({"size": first + count, **loaded, "reads": measured, "memory": cluster.memory(),
                            "load_average": os.getloadavg()})
    return figures


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    f = results["floor"]
    latency = results.get("latency") or {}
    p50 = (latency.get("all") or {}).get("p50_ms")
    return {
        "action_p50_over_floor": p50 / f["floor_p50_ms"] if p50 else None,
        "local_activity_over_bare": f["with_local_activity"]["p50_ms"] / f["bare"]["p50_ms"],
        "activity_over_bare": f["with_activity"]["p50_ms"] / f["bare"]["p50_ms"],
        "throughput_vs_bare_updates": {p["concurrency"]: p["actions_vs_bare_updates"]
                                       for p in results["throughput"]},
    }


# ---------------------------------------------------------------- the report


def write_results(results: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"lifecycle-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(results, indent=2, default=str, ensure_ascii=False), encoding="utf-8")
    return path


def fmt(value: float | None, pattern: str = "{:.1f}") -> str:
    return "-" if value is None else pattern.format(value)


def markdown(results: dict[str, Any]) -> str:
    env, f, r = results["environment"], results["floor"], results["ratios"]
    lat = results["latency"]
    lines = [f"\n### Staff actions, lifecycles and reads against the floor "
             f"({env['cpus']} CPUs, load average at start {', '.join(f'{x:.2f}' for x in env['load_average_at_start'])})\n",
             "| Latency (ms) | p50 | p95 | p99 | samples |", "|---|---:|---:|---:|---:|"]

    def row(label: str, s: dict[str, Any]) -> str:
        return f"| {label} | {fmt(s['p50_ms'])} | {fmt(s['p95_ms'])} | {fmt(s['p99_ms'])} | {s['samples']} |"

    lines.append(row("**staff action through the API** (1 client, all 28 actions of a lifecycle)", lat["all"]))
    for kind, s in lat["by_kind"].items():
        lines.append(row(f"&nbsp;&nbsp;{kind}", s))
    lines += [row("floor: bare Update (no activity)", f["bare"]),
              row("floor: bare INSERT + COMMIT (asyncpg)", f["insert_commit"]),
              f"| **floor = bare Update + INSERT/COMMIT (p50s)** | {fmt(f['floor_p50_ms'])} | | | |",
              row("Update + one no-op local activity", f["with_local_activity"]),
              row("Update + one no-op activity", f["with_activity"]),
              "",
              f"Ratios: staff action p50 / floor = **{fmt(r['action_p50_over_floor'], '{:.2f}')}** (target ≤ 1.5); "
              f"local activity / bare = {fmt(r['local_activity_over_bare'], '{:.2f}')}; "
              f"activity / bare = {fmt(r['activity_over_bare'], '{:.2f}')}.",
              "",
              "| Clients | lifecycles (done/asked) | lifecycles/min | actions/min | bare Updates/min (same count) "
              "| actions / bare | failed | load avg after |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in results["throughput"]:
        lines.append(f"| {p['concurrency']} | {p['completed']}/{p['lifecycles']} | {p['lifecycles_per_minute']:.1f} | "
                     f"{p['actions_per_minute']:.0f} | {p['bare_updates']['per_minute']:.0f} | "
                     f"**{p['actions_vs_bare_updates']:.2f}** | {p['failed']} | {p['load_average_after'][0]:.2f} |")
    lines += ["", "| CPU seconds used during | " + " | ".join(results["throughput"][0]["cpu_seconds"]) + " |",
              "|---|" + "---:|" * len(results["throughput"][0]["cpu_seconds"])]
    for p in results["throughput"]:
        for label, cpu in ((f"lifecycles at {p['concurrency']} clients ({p['seconds']:.0f} s)", p["cpu_seconds"]),
                           (f"bare Updates at {p['concurrency']} clients ({p['bare_updates']['seconds']:.0f} s)",
                            p["bare_updates"]["cpu_seconds"])):
            lines.append(f"| {label} | " + " | ".join(fmt(v) for v in cpu.values()) + " |")
    fin = results["finished"]
    lines += ["", f"Finished: {fin['stages'].get('completed', 0)}/{fin['cooperations']} cooperations completed, "
                  f"{fin['projects'].get('completed', 0)} projects completed, {fin['audit_events']:,} audit events "
                  f"({'all completed' if fin['all_completed'] else '**not all completed**'}).", ""]
    kinds = reads.READ_KINDS
    lines += ["| Reads p50 / p95 (ms) at cooperations | " + " | ".join(kinds) + " |",
              "|---:|" + "---:|" * len(kinds)]
    for step in results["reads"]:
        cells = [f"{fmt(step['reads'][k]['p50_ms'])} / {fmt(step['reads'][k]['p95_ms'])}" for k in kinds]
        lines.append(f"| {step['size']:,} | " + " | ".join(cells) + " |")
    lines += ["", "| Process | peak RSS (MB) | CPU seconds |", "|---|---:|---:|"]
    for name, m in results["memory"].items():
        lines.append(f"| {name} | {fmt(m['peak_rss_mb'], '{:.0f}')} | {fmt(m['cpu_seconds'], '{:.0f}')} |")
    lines += ["", "| Peak RSS (MB) after | " + " | ".join(results["memory"]) + " |",
              "|---|" + "---:|" * len(results["memory"])]
    for p in results["throughput"]:
        lines.append(f"| lifecycles at {p['concurrency']} clients | "
                     + " | ".join(fmt(m["peak_rss_mb"], "{:.0f}") for m in p["memory"].values()) + " |")
    for step in results["reads"]:
        lines.append(f"| reads at {step['size']:,} cooperations | "
                     + " | ".join(fmt(m["peak_rss_mb"], "{:.0f}") for m in step["memory"].values()) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- command line


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lifecycle", description=__doc__.split("\n\n")[1])
    d = Options()
    parser.add_argument("--concurrency", type=int_list, default=d.concurrency,
                        help="concurrent clients per level, comma-separated (default 1,8,64)")
    parser.add_argument("--lifecycles", type=int_list, default=d.lifecycles,
                        help="lifecycles per level, comma-separated, one per --concurrency level (default 8,16,64)")
    parser.add_argument("--floor-samples", type=int, default=d.floor_samples)
    parser.add_argument("--read-sizes", type=int_list, default=d.read_sizes,
                        help="read-model sizes in cooperations (default 1000,10000,100000)")
    parser.add_argument("--read-samples", type=int, default=d.read_samples)
    args = parser.parse_args(argv)
    if len(args.concurrency) != len(args.lifecycles):
        parser.error("--lifecycles needs one count per --concurrency level")
    started = time.perf_counter()
    results = run(Options(concurrency=args.concurrency, lifecycles=args.lifecycles, floor_samples=args.floor_samples,
                          read_sizes=args.read_sizes, read_samples=args.read_samples))
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)
    failed = sum(p["failed"] for p in results["throughput"])
    return 0 if results["finished"]["all_completed"] and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
