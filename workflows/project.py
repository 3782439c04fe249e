"""ProjectWorkflow: one investment project, its milestones and realized investment.

Started by its cooperation as a child with ParentClosePolicy.ABANDON, so it lives
on through the parent's continue-as-new. When the project closes (completed or
cancelled) it tells the parent, which completes once every project is closed.
Reminder timers (issue 3) will live in this workflow's main loop.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from domain import project as rules
    from domain.audit import SYSTEM_ACTOR, ActionContext, Change
    from domain.cooperation import ProjectClosed
    from domain.errors import DomainError
    from domain.project import CLOSED_STATUSES, CancelProject, ProjectState
    from domain.records import RECORD_PROJECT_EVENT, ProjectAction, ProjectEventRecord, ProjectInput

from workflows.common import (
    SYSTEM_WRITE_OPTIONS,
    WRITE_OPTIONS,
    RequestMemory,
    RolloverPolicy,
    context,
    event_fields,
    refusal,
)


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

    @workflow.run
    async def run(self, input: ProjectInput) -> ProjectState:
        await workflow.wait_condition(lambda: self._closed() or self._rollover.due())
        await workflow.wait_condition(workflow.all_handlers_finished)
        if not self._closed():
            workflow.continue_as_new(
                ProjectInput(
                    state=self._state,
                    handled_request_ids=self._handled.as_list(),
                    continue_as_new_after=input.continue_as_new_after,
                )
            )
        await self._tell_cooperation()
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

    @workflow.update
    async def act(self, action: ProjectAction) -> ProjectState:
        async with self._lock:
            if action.request_id in self._handled:
                return self._state
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
        try:
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
        await workflow.execute_local_activity(RECORD_PROJECT_EVENT, record, **options)
        self._state = draft
        self._rollover.events_this_run += 1
