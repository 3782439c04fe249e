"""The read-model writer: one accepted action becomes one PostgreSQL transaction."""

from __future__ import annotations

import asyncpg
from temporalio import activity

from db.readmodel import write_cooperation_event, write_project_event
from domain.records import (
    RECORD_COOPERATION_EVENT,
    RECORD_PROJECT_EVENT,
    CooperationEventRecord,
    ProjectEventRecord,
)


class ReadModelActivities:
    """Holds the pool; the worker registers the bound methods."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name=RECORD_COOPERATION_EVENT)
    async def record_cooperation_event(self, record: CooperationEventRecord) -> bool:
        async with self._pool.acquire() as conn:
            return await write_cooperation_event(conn, record)

    @activity.defn(name=RECORD_PROJECT_EVENT)
    async def record_project_event(self, record: ProjectEventRecord) -> bool:
        async with self._pool.acquire() as conn:
            return await write_project_event(conn, record)

    def all(self) -> list:
        return [self.record_cooperation_event, self.record_project_event]
