"""The read-model writer: one accepted action becomes one PostgreSQL transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.readmodel import (
    recorded_request,
    rewrite_cooperation_rows,
    rewrite_project_rows,
    write_cooperation_event,
    write_project_event,
)
from domain.records import (
    RECORD_COOPERATION_EVENT,
    RECORD_PROJECT_EVENT,
    CooperationEventRecord,
    ProjectEventRecord,
)


@asynccontextmanager
async def _data_errors_are_final() -> AsyncIterator[None]:
    """A value PostgreSQL rejects will be rejected on every retry: fail at once (the action
    then answers 503 and changes nothing) instead of retrying until the timeout."""
    try:
        yield
    except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as error:
        raise ApplicationError(f"the database refused the record: {error}", type="DataError",
                               non_retryable=True) from error


# The write is the same dozen statements every time, looked up by keys: PostgreSQL's generic
# plans fit them and save planning every statement again. The pool asks for a custom plan per
# execution (db/pool.py: audit searches whose best plan depends on the value), which here meant
# re-planning every statement, the dedupe probe over every monthly audit partition included:
# about 10 ms per write against 3 ms with `auto` (measured at 100,000 cooperations, see
# bench/README.md). Session-level for this connection until the pool takes it back: asyncpg's
# release runs RESET ALL, which restores the pool's setting.
_GENERIC_PLANS = "SET plan_cache_mode = auto"


class ReadModelActivities:
    """Holds the pool; the worker registers the bound methods."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # Already recorded (False) means this step ran before: an activity retry after its commit, or the
    # whole workflow task ran again (a worker died, or the server failed the task: e.g. a child's
    # completion arrived while the task that closes the cooperation was in flight). A task that ran
    # the same action again computed its state anew, with the new task's time, and that state is the
    # one the workflow keeps: the rows are brought to it (db.readmodel.rewrite_*_rows), so the read
    # model equals the workflow's state (`accord reconcile`). Another action recorded at this
    # version should not happen since the write runs after its task is in history
    # (workflows/common.py `write_event`); if it does, it is logged and `accord reconcile` reports it.

    @activity.defn(name=RECORD_COOPERATION_EVENT)
    async def record_cooperation_event(self, record: CooperationEventRecord) -> bool:
        async with self._pool.acquire() as conn, _data_errors_are_final():
            await conn.execute(_GENERIC_PLANS)
            if await write_cooperation_event(conn, record):
                return True
            if await _same_action(conn, record):
                await rewrite_cooperation_rows(conn, record)
            return False

    @activity.defn(name=RECORD_PROJECT_EVENT)
    async def record_project_event(self, record: ProjectEventRecord) -> bool:
        async with self._pool.acquire() as conn, _data_errors_are_final():
            await conn.execute(_GENERIC_PLANS)
            if await write_project_event(conn, record):
                return True
            if await _same_action(conn, record):
                await rewrite_project_rows(conn, record)
            return False

    def all(self) -> list:
        return [self.record_cooperation_event, self.record_project_event]


async def _same_action(conn: asyncpg.Connection, record: CooperationEventRecord | ProjectEventRecord) -> bool:
    """Whether the event already recorded at this version is this very action (same request id)."""
    recorded = await recorded_request(conn, record.workflow_id, record.seq)
    if recorded == record.request_id:
        return True
    activity.logger.error("%s event %s is recorded for request %s, this attempt is request %s: the read model "
                          "may differ from the workflow until `accord reconcile --repair`",
                          record.workflow_id, record.seq, recorded, record.request_id)
    return False
