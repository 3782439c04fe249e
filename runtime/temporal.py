"""Connecting to Temporal and building the worker."""

from __future__ import annotations

import asyncpg
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.readmodel import ReadModelActivities
from activities.reminders import ReminderActivities, ReminderConfig
from workflows.cooperation import CooperationWorkflow
from workflows.project import ProjectWorkflow

WORKFLOWS = [CooperationWorkflow, ProjectWorkflow]


async def connect(address: str, namespace: str = "default") -> Client:
    return await Client.connect(address, namespace=namespace, data_converter=pydantic_data_converter)


def build_worker(client: Client, pool: asyncpg.Pool, task_queue: str, reminders: ReminderConfig | None = None,
                 **options: object) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[*ReadModelActivities(pool).all(), *ReminderActivities(pool, reminders or ReminderConfig()).all()],
        **options,  # type: ignore[arg-type]
    )
