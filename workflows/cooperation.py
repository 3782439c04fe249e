"""CooperationWorkflow: the lifecycle of one cooperation, from negotiation to completion.

Every staff action arrives as the `act` Update. Its validator dry-runs the domain
rule on a copy, so a forbidden action is refused before it enters history. The
handler applies the rule to a copy, has the read model and audit row written by an
activity (workflows/common.py `write_event`), and only then commits the copy: a failed
write leaves the state as it was.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from domain import access
    from domain import cooperation as rules
    from domain.audit import SYSTEM_ACTOR, ActionContext, Change
    from domain.cooperation import CLOSED_STAGES, CooperationState, CreateProject, ProjectClosed, TerminateCooperation
    from domain.errors import DomainError
    from domain.project import CLOSED_STATUSES, NewProject
    from domain.records import (
        RECORD_COOPERATION_EVENT,
        CooperationAction,
        CooperationEventRecord,
        CooperationInput,
        ProjectInput,
        project_workflow_id,
    )

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
from workflows.project import ProjectWorkflow, check_version

# workflow.patched ids: each guards a change so that histories recorded before it still replay.
START_PROJECT_BEFORE_COMMIT = "start-project-before-commit"


@workflow.defn
class CooperationWorkflow:
    @workflow.init
    def __init__(self, input: CooperationInput) -> None:
        self._input = input
        self._lock = asyncio.Lock()
        self._handled = RequestMemory(input.handled_request_ids)
        self._rollover = RolloverPolicy(input.continue_as_new_after)
        self._state: CooperationState | None = input.state

    # ------------------------------------------------------------ main loop

    @workflow.run
    async def run(self, input: CooperationInput) -> CooperationState:
        if self._state is None:
            await self._open(input)
        assert self._state is not None
        await workflow.wait_condition(lambda: self._closed() or self._rollover.due())
        # Let in-flight Updates and signals finish: their callers are waiting for an answer.
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._closed():
            return self._state
        workflow.continue_as_new(
            CooperationInput(
                cooperation_id=input.cooperation_id,
                state=self._state,
                handled_request_ids=self._handled.as_list(),
                continue_as_new_after=input.continue_as_new_after,
            )
        )

    async def _open(self, input: CooperationInput) -> None:
        """First run: build the state from the creation input and write its first event."""
        assert input.create is not None and input.creator is not None
        async with self._lock:
            ctx = input.creator.model_copy(update={"now": workflow.now()})
            state, change = rules.new_cooperation(input.cooperation_id, input.create, ctx)
            await self._commit(state, change, ctx, options=SYSTEM_WRITE_OPTIONS)
            self._handled.add(ctx.request_id)

    def _closed(self) -> bool:
        return self._state is not None and self._state.stage in CLOSED_STAGES

    # ------------------------------------------------------------ reads

    @workflow.query
    def state(self) -> CooperationState | None:
        return self._state

    @workflow.update
    async def opened(self) -> CooperationState:
        """Sent with update-with-start: answers once the creation is in the read model."""
        await workflow.wait_condition(lambda: self._state is not None)
        assert self._state is not None
        return self._state

    # ------------------------------------------------------------ staff actions

    @workflow.update
    async def act(self, action: CooperationAction) -> CooperationState:
        async with self._lock:
            assert self._state is not None
            if action.request_id in self._handled:
                return self._state
            check_version(action.expected_seq, self._state.seq)  # again under the lock: another may have won
            ctx = context(action.actor, action.request_id)
            draft = self._state.model_copy(deep=True)
            try:
                change = rules.apply(draft, action.command, ctx)
            except DomainError as error:
                # The state moved between validation and now (another action won the lock).
                raise refusal(error) from None
            command = action.command
            new_project = self._new_project(command, ctx) if isinstance(command, CreateProject) else None
            if new_project is not None and workflow.patched(START_PROJECT_BEFORE_COMMIT):
                await self._start_project_then_commit(new_project, draft, change, ctx)
            else:
                await self._commit(draft, change, ctx, new_project)
                if new_project is not None:  # histories from before the patch started the child last
                    await self._start_project(new_project)
            self._handled.add(action.request_id)
            if isinstance(command, TerminateCooperation):
                await self._cancel_open_projects(command.reason)
            return self._state

    @act.validator
    def _validate_act(self, action: CooperationAction) -> None:
        if self._state is None:
            raise ApplicationError("the cooperation is still being created", type="Refused")
        if action.request_id in self._handled:
            return
        check_version(action.expected_seq, self._state.seq, settling=self._lock.locked())
        try:
            # The second line behind the API's own check (domain/access.py): only here are the
            # agreement's authors known, so separation of duties is enforced here.
            command = action.command
            agreement = next((a for a in self._state.agreements
                              if a.agreement_id == getattr(command, "agreement_id", None)), None)
            access.check_cooperation_command(
                action.actor, command.kind, self._state.department, step=getattr(command, "step", None),
                authors=agreement.authors if agreement else (), what=f"cooperation {self._state.cooperation_id}")
            rules.apply(self._state.model_copy(deep=True), action.command, context(action.actor, action.request_id))
        except DomainError as error:
            raise refusal(error) from None

    @workflow.signal
    async def project_closed(self, message: ProjectClosed) -> None:
        """A child project completed or was cancelled; the last one completes the cooperation."""
        async with self._lock:
            assert self._state is not None
            request_id = f"project-closed:{message.project_id}"
            if request_id in self._handled:
                return
            ctx = context(SYSTEM_ACTOR, request_id)
            draft = self._state.model_copy(deep=True)
            try:
                change = rules.apply(draft, message, ctx)
            except DomainError as error:
                workflow.logger.warning("ignored project_closed for %s: %s", message.project_id, error.reason)
                return
            await self._commit(draft, change, ctx, options=SYSTEM_WRITE_OPTIONS)
            self._handled.add(request_id)

    # ------------------------------------------------------------ helpers

    async def _commit(
        self,
        draft: CooperationState,
        change: Change,
        ctx: ActionContext,
        new_project: NewProject | None = None,
        options: dict = WRITE_OPTIONS,
    ) -> None:
        draft.seq += 1
        record = CooperationEventRecord(**event_fields(draft.seq, ctx, change), state=draft, new_project=new_project)
        await write_event(RECORD_COOPERATION_EVENT, record, options)
        self._state = draft
        self._rollover.events_this_run += 1

    def _new_project(self, cmd: CreateProject, ctx: ActionContext) -> NewProject:
        assert self._state is not None
        return NewProject(
            project_id=cmd.project_id,
            cooperation_id=self._state.cooperation_id,
            cooperation_workflow_id=workflow.info().workflow_id,
            agreement_id=cmd.agreement_id,
            title=cmd.title,
            site=cmd.site,
            committed_investment=cmd.committed_investment,
            responsible_department=cmd.responsible_department,
            responsible_officer=cmd.responsible_officer,
            milestones=cmd.milestones,
            created_at=ctx.now,
            cooperation_department=self._state.department,
        )

    async def _start_project_then_commit(
        self, project: NewProject, draft: CooperationState, change: Change, ctx: ActionContext
    ) -> None:
        """Start the child first: if it cannot start, nothing is recorded; if the record
        cannot be written, the child is cancelled before it ever wrote anything."""
        try:
            await self._start_project(project)
        except WorkflowAlreadyStartedError:
            raise ApplicationError(f"project id {project.project_id} is already in use", type="Refused",
                                   non_retryable=True) from None
        try:
            await self._commit(draft, change, ctx, project)
        except ActivityError:
            await workflow.get_external_workflow_handle(project_workflow_id(project.project_id)).cancel()
            raise

    async def _start_project(self, project: NewProject) -> None:
        # ABANDON: the project must outlive this run's continue-as-new.
        await workflow.start_child_workflow(
            ProjectWorkflow.run,
            ProjectInput(new=project),
            id=project_workflow_id(project.project_id),
            parent_close_policy=ParentClosePolicy.ABANDON,
        )

    async def _cancel_open_projects(self, reason: str) -> None:
        assert self._state is not None
        for ref in self._state.projects:
            if ref.status not in CLOSED_STATUSES:
                handle = workflow.get_external_workflow_handle(project_workflow_id(ref.project_id))
                await handle.signal(ProjectWorkflow.cooperation_terminated, reason)
