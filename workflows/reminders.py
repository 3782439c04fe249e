"""The reminder loop of a project workflow: durable timers, not polling.

Each turn recomputes the schedule with the pure `upcoming_notices` (policies,
calendar, milestones, workflow time, keys already handled), dispatches what is
due, and sleeps with `wait_condition(..., timeout=...)` until the next notice or
until something changes: an action on the project, a policy or calendar edit, a
finished delivery. Nothing is remembered about the schedule itself, so a moved
due date or a completed milestone is reflected on the next turn, immediately.

Deliveries run as concurrent activities so that a channel that is down for days
does not hold back other notices. A delivery that gives up is reported to the
liaison officer's inbox; either way its key is then handled and never owed again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.project import ProjectState
    from domain.records import DELIVER_NOTICE, LOAD_REMINDER_SETUP, REPORT_FAILED_DELIVERY
    from domain.reminders import (
        Dispatch,
        FailedDispatch,
        Notice,
        ReminderMemory,
        ReminderSetup,
        SetupRequest,
        due_now,
        keys_still_relevant,
        next_wakeup,
        reminder_milestones,
        upcoming_notices,
    )

# One attempt sends to every recipient and channel of one notice (`attempt_timeout`), then it is
# retried with backoff (`first_retry`, doubling, capped at an hour) until `give_up_after`.
LONGEST_RETRY_INTERVAL = timedelta(hours=1)
# Loading the setup and reporting a failure only touch PostgreSQL: retried until it is back.
DATABASE_ONLY = dict(start_to_close_timeout=timedelta(seconds=30),
                     retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1),
                                              maximum_interval=timedelta(minutes=1)))


class ReminderLoop:
    def __init__(self, project_id: str, cooperation_id: str, memory: ReminderMemory | None) -> None:
        memory = memory or ReminderMemory()
        self._request = SetupRequest(project_id=project_id, cooperation_id=cooperation_id)
        self._handled: set[str] = set(memory.sent_keys)
        self._in_flight: dict[str, Dispatch] = {}
        self._carried = list(memory.in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._setup: ReminderSetup | None = None
        self._reload = True
        self._changed = False
        self.settings_signalled = False
        """Set by every settings signal: a run from before reminders existed continues as new on it."""

    # ------------------------------------------------------------ called by the workflow

    def changed(self) -> None:
        """The project changed: recompute now."""
        self._changed = True

    def settings_changed(self) -> None:
        """Policies or the calendar changed: reload them, then recompute."""
        self._reload = True
        self._changed = True
        self.settings_signalled = True

    def memory(self) -> ReminderMemory:
        return ReminderMemory(sent_keys=sorted(self._handled), in_flight=list(self._in_flight.values()))

    @property
    def setup(self) -> ReminderSetup | None:
        return self._setup

    async def run(self, project: Callable[[], ProjectState], stop: Callable[[], bool]) -> None:
        """Remind until `stop()` is true; in-flight deliveries go on (see `finish`)."""
        if stop():
            return
        await self._load_setup()
        for dispatch in self._carried:  # dispatches of the previous run that had not finished
            self._start(dispatch)
        self._carried = []
        while not stop():
            if self._reload:
                await self._load_setup()
            wakeup = self._turn(project())
            self._changed = False
            now = workflow.now()
            try:
                # `_reload` too: a settings signal that came while the setup was loading set both
                # flags, and the turn above has just cleared `_changed`.
                await workflow.wait_condition(lambda: self._changed or self._reload or stop(),
                                              timeout=(wakeup - now) if wakeup else None)
            except asyncio.TimeoutError:
                pass

    async def _load_setup(self) -> None:
        self._reload = False
        self._setup = await workflow.execute_activity(
            LOAD_REMINDER_SETUP, self._request, result_type=ReminderSetup, **DATABASE_ONLY)

    async def finish(self) -> None:
        """Wait for the deliveries already dispatched (a closed project still owes what fell due)."""
        await workflow.wait_condition(lambda: not self._tasks)

    # ------------------------------------------------------------ one turn

    def _turn(self, state: ProjectState) -> datetime | None:
        """Dispatch what is due; return when to look again (None: only when something changes)."""
        assert self._setup is not None
        setup, now = self._setup, workflow.now()
        milestones = reminder_milestones(state)
        self._handled = set(keys_still_relevant(self._handled, milestones))
        notices = upcoming_notices(setup.policies, setup.calendar, milestones, now,
                                   self._handled | self._in_flight.keys(), setup.hour, setup.until_hour)
        for notice in due_now(notices, now):
            self._start(Dispatch(notice=notice, dispatched_at=now))
        return next_wakeup(notices, now)

    def _start(self, dispatch: Dispatch) -> None:
        self._in_flight[dispatch.notice.key] = dispatch
        task = asyncio.create_task(self._deliver(dispatch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, dispatch: Dispatch) -> None:
        notice: Notice = dispatch.notice
        setup = self._setup
        assert setup is not None, "dispatches start only after the setup is loaded"
        retry = RetryPolicy(initial_interval=setup.first_retry, backoff_coefficient=2.0,
                            maximum_interval=LONGEST_RETRY_INTERVAL)
        try:
            await workflow.execute_activity(
                DELIVER_NOTICE, dispatch, start_to_close_timeout=setup.attempt_timeout,
                schedule_to_close_timeout=setup.give_up_after, retry_policy=retry)
        except ActivityError as error:
            reason = str(error.cause or error)
            await workflow.execute_activity(REPORT_FAILED_DELIVERY, FailedDispatch(dispatch=dispatch, reason=reason),
                                            **DATABASE_ONLY)
        finally:
            self._in_flight.pop(notice.key, None)
            self._handled.add(notice.key)
            self._changed = True
