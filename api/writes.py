"""Staff actions from the API to the workflows, with Temporal failures turned into HTTP answers."""

from __future__ import annotations

from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.errors import conflict, from_update_failure, is_closed_workflow, not_found
from api.services import Services
from db import queries
from domain.audit import Actor
from domain.cooperation import CLOSED_STAGES, CooperationCommand, CooperationState
from domain.project import CLOSED_STATUSES, ProjectCommand, ProjectState
from runtime.lifecycle import act_on_cooperation, act_on_project


async def cooperation_action(
    services: Services, cooperation_id: str, actor: Actor, command: CooperationCommand, request_id: str
) -> CooperationState:
    async with services.pool.acquire() as conn:
        stage = await queries.cooperation_stage(conn, cooperation_id)
    if stage is None:
        raise not_found(f"cooperation {cooperation_id}")
    try:
        return await act_on_cooperation(services.client, cooperation_id, actor, command, request_id)
    except WorkflowUpdateFailedError as error:
        raise from_update_failure(error) from None
    except RPCError as error:
        # The workflow has ended (completed or terminated): the read model says which.
        if is_closed_workflow(error) and stage[0] in CLOSED_STAGES:
            name, reason = stage
            raise conflict(f"the cooperation is {name}{f' ({reason})' if reason else ''}; nothing can change any more")
        raise  # a closed workflow the read model calls open is an operations problem: 503


async def project_action(
    services: Services, project_id: str, actor: Actor, command: ProjectCommand, request_id: str
) -> ProjectState:
    async with services.pool.acquire() as conn:
        status = await queries.project_status(conn, project_id)
    if status is None:
        raise not_found(f"project {project_id}")
    try:
        return await act_on_project(services.client, project_id, actor, command, request_id)
    except WorkflowUpdateFailedError as error:
        raise from_update_failure(error) from None
    except RPCError as error:
        if is_closed_workflow(error) and status[0] in CLOSED_STATUSES:
            name, reason = status
            raise conflict(f"the project is {name}{f' ({reason})' if reason else ''}; nothing can change any more")
        raise
