"""The floor: what the underlying parts allow on this machine, measured in the same run.

- a bare Temporal Update round trip on a trivial workflow (the Update runs no activity),
- the same with one no-op regular activity, and with one no-op local activity,
- a bare asyncpg INSERT + COMMIT on the same PostgreSQL,
- bare Updates per minute at a given number of concurrent clients.

`python -m bench.floor --worker ADDRESS QUEUE` is the floor's worker process (started by
bench.cluster), so that the trivial workflows run in a process of their own like the
application's worker does.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
import uuid
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from bench.floor_workflow import FloorWorkflow, noop

KINDS = ("bare", "with_local_activity", "with_activity")
UPDATES_PER_WORKFLOW = 1000
"""A workflow run takes at most 2,000 Updates; the bench moves to a new workflow well before."""


def ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def start_floor_workflow(client: Client, queue: str) -> WorkflowHandle:
    return await client.start_workflow(FloorWorkflow.run, id=f"bench-floor-{uuid.uuid4().hex}", task_queue=queue)


async def finish(handles: list[WorkflowHandle]) -> None:
    await asyncio.gather(*(h.signal(FloorWorkflow.finish) for h in handles))


async def update_latencies(client: Client, queue: str, kind: str, samples: int, warmup: int = 10) -> list[float]:
    """Sequential Updates of one kind on one trivial workflow; milliseconds each (warm-up dropped)."""
    method = getattr(FloorWorkflow, kind)
    handles = [await start_floor_workflow(client, queue)]
    await handles[0].execute_update(FloorWorkflow.bare)  # its first task is behind us
    times = []
    for i in range(warmup + samples):
        if (i + 1) % UPDATES_PER_WORKFLOW == 0:
            handles.append(await start_floor_workflow(client, queue))
        started = time.perf_counter()
        await handles[-1].execute_update(method)
        if i >= warmup:
            times.append(ms_since(started))
    await finish(handles)
    return times


async def prepare_commit_table(conn: asyncpg.Connection) -> None:
    await conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, at timestamptz NOT NULL "
                       "DEFAULT now(), note text NOT NULL)")


async def commit_latencies(pool: asyncpg.Pool, samples: int, warmup: int = 10) -> list[float]:
    """One INSERT and its COMMIT on a pooled connection, sequentially; milliseconds each."""
    async with pool.acquire() as conn:
        await prepare_commit_table(conn)
    times = []
    for i in range(warmup + samples):
        async with pool.acquire() as conn:
            started = time.perf_counter()
            async with conn.transaction():
                await conn.execute("INSERT INTO bench_floor (note) VALUES ($1)", f"floor {i}")
            if i >= warmup:
                times.append(ms_since(started))
    return times


async def bare_update_rate(client: Client, queue: str, concurrency: int, updates: int) -> dict[str, Any]:
    """`updates` bare Updates shared by `concurrency` clients, each on its own trivial workflow."""
    handles = await asyncio.gather(*(start_floor_workflow(client, queue) for _ in range(concurrency)))
    await asyncio.gather(*(h.execute_update(FloorWorkflow.bare) for h in handles))  # first tasks done
    share = [updates // concurrency + (1 if c < updates % concurrency else 0) for c in range(concurrency)]
    done: list[int] = []

    async def one_client(c: int) -> None:
        handle = handles[c]
        for i in range(share[c]):
            if (i + 1) % UPDATES_PER_WORKFLOW == 0:
                handle = await start_floor_workflow(client, queue)
                handles.append(handle)
            await handle.execute_update(FloorWorkflow.bare)
            done.append(1)

    started = time.perf_counter()
    await asyncio.gather(*(one_client(c) for c in range(concurrency)))
    seconds = time.perf_counter() - started
    await finish(list(handles))
    return {"concurrency": concurrency, "updates": len(done), "seconds": seconds,
            "per_minute": len(done) / seconds * 60}


# ---------------------------------------------------------------- the floor's worker process


async def serve(address: str, queue: str) -> None:
    client = await Client.connect(address)
    worker = Worker(client, task_queue=queue, workflows=[FloorWorkflow], activities=[noop])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("--worker", nargs=2, metavar=("ADDRESS", "QUEUE"), required=True,
                        help="run the floor's worker against this Temporal frontend and task queue")
    args = parser.parse_args(argv)
    asyncio.run(serve(*args.worker))


if __name__ == "__main__":
    main()
