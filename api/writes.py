"""Staff actions from the API to the workflows, with Temporal failures turned into HTTP answers.

With a `Precondition` (If-Match, see api/concurrency.py) the version the client saw travels
with the action and the workflow refuses it if the record has moved on (412); a successful
answer carries the record's new ETag.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.concurrency import Precondition
from api.errors import conflict, from_update_failure, is_closed_workflow, not_found
from api.services import Services
from db import queries
from domain import access
from domain.audit import Actor
from domain.cooperation import CLOSED_STAGES, CooperationCommand, CooperationState
from domain.project import CLOSED_STATUSES, ProjectCommand, ProjectState
from domain.records import CooperationAction, ProjectAction, cooperation_workflow_id, project_workflow_id
from runtime.lifecycle import act_on_cooperation, act_on_project
from workflows.cooperation import CooperationWorkflow
from workflows.project import ProjectWorkflow

T = TypeVar("T")


async def cooperation_action(
    services: Services, cooperation_id: str, actor: Actor, command: CooperationCommand, request_id: str,
    precondition: Precondition | None = None,
) -> CooperationState:
    async with services.pool.acquire() as conn:
        header = await queries.cooperation_header(conn, cooperation_id)
    if header is not None:
        step = getattr(command, "step", None)
        access.check_cooperation_command(actor, command.kind, header.departments[0], step=step,
                                         what=f"cooperation {cooperation_id}")
    expected = precondition.expected_seq if precondition is not None else None
    if expected is None:
        update = act_on_cooperation(services.client, cooperation_id, actor, command, request_id)
    else:
        action = CooperationAction(request_id=request_id, actor=actor, command=command, expected_seq=expected)
        update = _act_expecting(services.client, CooperationWorkflow, cooperation_workflow_id(cooperation_id), action)
    state = await _send("cooperation", cooperation_id, header, CLOSED_STAGES, update)
    if precondition is not None:
        precondition.answered(state.seq)
    return state


async def project_action(
    services: Services, project_id: str, actor: Actor, command: ProjectCommand, request_id: str,
    precondition: Precondition | None = None,
) -> ProjectState:
    async with services.pool.acquire() as conn:
        header = await queries.project_header(conn, project_id)
    if header is not None:
        access.check_project_command(actor, command.kind, header.departments, what=f"project {project_id}")
    expected = precondition.expected_seq if precondition is not None else None
    if expected is None:
        update = act_on_project(services.client, project_id, actor, command, request_id)
    else:
        action = ProjectAction(request_id=request_id, actor=actor, command=command, expected_seq=expected)
        update = _act_expecting(services.client, ProjectWorkflow, project_workflow_id(project_id), action)
    state = await _send("project", project_id, header, CLOSED_STATUSES, update)
    if precondition is not None:
        precondition.answered(state.seq)
    return state


async def _act_expecting(client: Client, workflow: type[CooperationWorkflow] | type[ProjectWorkflow],
                         workflow_id: str, action: CooperationAction | ProjectAction) -> Any:
    """The `act` Update as runtime.lifecycle sends it, with the client's version attached."""
    handle = client.get_workflow_handle(workflow_id)
    return await handle.execute_update(workflow.act, action, id=action.request_id)


async def _send(what: str, record_id: str, known: queries.Header | None, closed: set,
                update: Coroutine[Any, Any, T]) -> T:
    """Await the Update; `known` is the record as the read model has it, None if unknown."""
    if known is None:
        update.close()  # never sent
        raise not_found(f"{what} {record_id}")
    try:
        return await update
    except WorkflowUpdateFailedError as error:
        raise from_update_failure(error) from None
    except RPCError as error:
        # The workflow has ended (completed or terminated): the read model says which.
        if is_closed_workflow(error) and known.status in closed:
            name, reason = known.status, known.reason
            detail = f"the {what} is {name}{f' ({reason})' if reason else ''}; nothing can change any more"
            raise conflict(detail) from None
        raise  # a closed workflow the read model calls open is an operations problem: 503
