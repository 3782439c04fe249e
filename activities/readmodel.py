"""The read-model writer: one accepted action becomes one PostgreSQL transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.readmodel import write_cooperation_event, write_project_event
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


class ReadModelActivities:
    """Holds the pool; the worker registers the bound methods."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name=RECORD_COOPERATION_EVENT)
    async def record_cooperation_event(self, record: CooperationEventRecord) -> bool:
        async with self._pool.acquire() as conn, _data_errors_are_final():
            return await write_cooperation_event(conn, record)

    @activity.defn(name=RECORD_PROJECT_EVENT)
    async def record_project_event(self, record: ProjectEventRecord) -> bool:
        async with self._pool.acquire() as conn, _data_errors_are_final():
            return await write_project_event(conn, record)

    def all(self) -> list:
        return [self.record_cooperation_event, self.record_project_event]
