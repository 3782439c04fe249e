"""The floor's trivial workflow: Updates that do nothing, or run one no-op (local) activity.

Kept apart from `bench.floor` so that the workflow sandbox imports only Temporal here.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

NOOP = "bench_noop"
ACTIVITY_TIMEOUT = timedelta(seconds=30)


@activity.defn(name=NOOP)
async def noop() -> None:
    """Does nothing: what is measured is the scheduling around it."""


@workflow.defn(name="BenchFloor")
class FloorWorkflow:
    """Counts its Updates; ends on `finish`, or continues as new when Temporal suggests it."""

    def __init__(self) -> None:
        self._count = 0
        self._done = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self._done or workflow.info().is_continue_as_new_suggested())
        await workflow.wait_condition(workflow.all_handlers_finished)
        if not self._done:
            workflow.continue_as_new()
        return self._count

    @workflow.update
    async def bare(self) -> int:
        """No activity: the Update's own round trip (a workflow task, its completion)."""
        self._count += 1
        return self._count

    @workflow.update
    async def with_activity(self) -> int:
        """One regular no-op activity: scheduled through the server, polled, completed."""
        await workflow.execute_activity(NOOP, start_to_close_timeout=ACTIVITY_TIMEOUT)
        self._count += 1
        return self._count

    @workflow.update
    async def with_local_activity(self) -> int:
        """One no-op local activity: run by the worker inside the workflow task, no extra poll."""
        await workflow.execute_local_activity(NOOP, start_to_close_timeout=ACTIVITY_TIMEOUT)
        self._count += 1
        return self._count

    @workflow.signal
    def finish(self) -> None:
        self._done = True
