"""ProjectWorkflow: one investment project, its milestones and realized investment.

Started by its cooperation as a child with ParentClosePolicy.ABANDON, so it lives
on through the parent's continue-as-new. When the project closes (completed or
cancelled) it tells the parent, which completes once every project is closed.
Its main loop is the milestone reminder loop (`workflows.reminders`).
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from domain import access
    from domain import project as rules
    from domain.audit import SYSTEM_ACTOR, ActionContext, Change
    from domain.cooperation import ProjectClosed
    from domain.errors import DomainError
    from domain.project import CLOSED_STATUSES, CancelProject, ProjectState
    from domain.records import RECORD_PROJECT_EVENT, ProjectAction, ProjectEventRecord, ProjectInput
    from domain.reminders import ReminderMemory

from workflows.common import (
    SYSTEM_WRITE_OPTIONS,
    WRITE_OPTIONS,
    RequestMemory,
    RolloverPolicy,
    context,
    event_fields,
    refusal,
    write_event,
)
from workflows.reminders import ReminderLoop

# Histories recorded before reminders (tests/histories/v1-*, v2-*) only waited for the close.
REMINDERS_PATCH = "milestone-reminders"


def check_version(expected_seq: int | None, seq: int, settling: bool = False) -> None:
    """Optimistic concurrency (If-Match): refuse an action based on another version of the record.

    Used by both workflows' `act`. It issues no command, and recorded histories never carry
    `expected_seq`, so no patch is needed. The API answers type "Stale" with 412.
    `settling` (validators only): an action holds the lock and its write may already show the
    next version in the read model, so only an older version is refused; the handler decides.
    """
    if expected_seq is None or expected_seq == seq or (settling and expected_seq > seq):
        return
    raise ApplicationError(
        f"someone else changed this record since you loaded it (version {expected_seq}, now {seq}); "
        "reload and try again", type="Stale", non_retryable=True)


@workflow.defn
class ProjectWorkflow:
    @workflow.init
    def __init__(self, input: ProjectInput) -> None:
        self._lock = asyncio.Lock()
        self._handled = RequestMemory(input.handled_request_ids)
        self._rollover = RolloverPolicy(input.continue_as_new_after)
        if input.state is not None:
            self._state = input.state
        else:
            assert input.new is not None
            self._state = rules.new_project(input.new)
        self._reminders = ReminderLoop(self._state.project_id, self._state.cooperation_id, input.reminders)

    @workflow.run
    async def run(self, input: ProjectInput) -> ProjectState:
        reminding = workflow.patched(REMINDERS_PATCH)
        if reminding:
            await self._reminders.run(lambda: self._state, lambda: self._closed() or self._rollover.due())
        else:
            # A run started before reminders existed. `reminder_settings_changed` (sent on every
            # policy or calendar edit, and by `accord reminders resync`) makes it continue as new,
            # and the new run reminds. Old histories never hold that signal, so they replay as before.
            await workflow.wait_condition(
                lambda: self._closed() or self._rollover.due() or self._reminders.settings_signalled)
        await workflow.wait_condition(workflow.all_handlers_finished)
        if not self._closed():
            workflow.continue_as_new(
                ProjectInput(
                    state=self._state,
                    handled_request_ids=self._handled.as_list(),
                    continue_as_new_after=input.continue_as_new_after,
                    reminders=self._reminders.memory() if reminding else None,
                )
            )
        await self._tell_cooperation()
        if reminding:
            await self._reminders.finish()
        return self._state

    def _closed(self) -> bool:
        return self._state.status in CLOSED_STATUSES

    async def _tell_cooperation(self) -> None:
        parent = workflow.get_external_workflow_handle(self._state.cooperation_workflow_id)
        message = ProjectClosed(project_id=self._state.project_id, status=self._state.status)
        try:
            await parent.signal("project_closed", message)
        except FailureError as error:
            # The cooperation already ended (terminated): nothing is waiting for this project.
            workflow.logger.info("cooperation did not take project_closed: %s", error)

    @workflow.query
    def state(self) -> ProjectState:
        return self._state

    @workflow.query
    def reminders(self) -> ReminderMemory:
        """Keys already handled and deliveries in flight: with the state, what the schedule preview needs."""
        return self._reminders.memory()

    @workflow.signal
    def reminder_settings_changed(self) -> None:
        """A policy or the calendar was edited: reload and recompute the schedule."""
        self._reminders.settings_changed()

    @workflow.update
    async def act(self, action: ProjectAction) -> ProjectState:
        async with self._lock:
            if action.request_id in self._handled:
                return self._state
            check_version(action.expected_seq, self._state.seq)  # again under the lock: another may have won
            ctx = context(action.actor, action.request_id)
            draft = self._state.model_copy(deep=True)
            try:
                change = rules.apply(draft, action.command, ctx)
            except DomainError as error:
                raise refusal(error) from None
            await self._commit(draft, change, ctx)
            self._handled.add(action.request_id)
            return self._state

    @act.validator
    def _validate_act(self, action: ProjectAction) -> None:
        if action.request_id in self._handled:
            return
        check_version(action.expected_seq, self._state.seq, settling=self._lock.locked())
        try:
            access.check_project_command(  # the second line behind the API's own check
                action.actor, action.command.kind,
                [self._state.responsible_department, self._state.cooperation_department],
                what=f"project {self._state.project_id}")
            rules.apply(self._state.model_copy(deep=True), action.command, context(action.actor, action.request_id))
        except DomainError as error:
            raise refusal(error) from None

    @workflow.signal
    async def cooperation_terminated(self, reason: str) -> None:
        """The parent cooperation was terminated: an open project is cancelled with its reason."""
        async with self._lock:
            if self._closed():
                return
            ctx = context(SYSTEM_ACTOR, "cooperation-terminated")
            draft = self._state.model_copy(deep=True)
            change = rules.apply(draft, CancelProject(reason=f"cooperation terminated: {reason}"[:500]), ctx)
            await self._commit(draft, change, ctx, options=SYSTEM_WRITE_OPTIONS)

    async def _commit(
        self, draft: ProjectState, change: Change, ctx: ActionContext, options: dict = WRITE_OPTIONS
    ) -> None:
        draft.seq += 1
        record = ProjectEventRecord(**event_fields(draft.seq, ctx, change), state=draft)
        await write_event(RECORD_PROJECT_EVENT, record, options)
        self._state = draft
        self._rollover.events_this_run += 1
        self._reminders.changed()
