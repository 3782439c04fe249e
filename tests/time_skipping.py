"""The time-skipping test server (the Java test server) with a worker of our own, and moving its clock.

Each user of it gets a server and task queue of its own: the time-skipping server is for
small tests run one at a time (see ../shared/DESIGN.md).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import asyncpg
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.reminders import ReminderConfig
from runtime.temporal import build_worker


@asynccontextmanager
async def time_skipping_worker(pool: asyncpg.Pool, task_queue: str,
                               reminders: ReminderConfig | None = None) -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    try:
        async with build_worker(env.client, pool, task_queue, reminders=reminders):
            yield env
    finally:
        await env.shutdown()


async def skip_to(env: WorkflowEnvironment, moment: datetime) -> None:
    """Let the server's clock run to `moment` (timers due on the way fire)."""
    now = await env.get_current_time()
    assert moment > now, "a scenario only moves forward in time"
    await env.sleep(moment - now)
