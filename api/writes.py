"""Staff actions from the API to the workflows, with Temporal failures turned into HTTP answers.

With a `Precondition` (If-Match, see api/concurrency.py) the version the client saw travels
with the action and the workflow refuses it if the record has moved on (412); a successful
answer carries the record's new ETag.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import ValidationError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.concurrency import Precondition
from api.errors import ApiError, conflict, from_update_failure, is_closed_workflow, not_found
from api.services import Services
from db import queries
from domain import access
from domain.audit import Actor
from domain.cooperation import CLOSED_STAGES, CooperationCommand, CooperationState
from domain.errors import DomainError
from domain.project import CLOSED_STATUSES, ProjectCommand, ProjectState
from observability.metrics import ACTIONS, outcome_of
from runtime.lifecycle import act_on_cooperation, act_on_project

T = TypeVar("T")


@contextmanager
def counted(kind: str) -> Iterator[None]:
    """Count one action of `kind` in accord_actions_total by its outcome: accepted, refused (the
    answer is a 4xx: not allowed, not found, stale, against the rules, busy) or failed (5xx)."""
    try:
        yield
    except ApiError as error:
        ACTIONS.labels(kind, outcome_of(error.status)).inc()
        raise
    except (DomainError, ValidationError):
        ACTIONS.labels(kind, "refused").inc()
        raise
    except RPCError as error:
        ACTIONS.labels(kind, "refused" if error.status == RPCStatusCode.RESOURCE_EXHAUSTED else "failed").inc()
        raise
    except Exception:
        ACTIONS.labels(kind, "failed").inc()
        raise
    ACTIONS.labels(kind, "accepted").inc()


async def cooperation_action(
    services: Services, cooperation_id: str, actor: Actor, command: CooperationCommand, request_id: str,
    precondition: Precondition | None = None,
) -> CooperationState:
    with counted(command.kind):
        async with services.pool.acquire() as conn:
            header = await queries.cooperation_header(conn, cooperation_id)
        if header is not None:
            access.check_cooperation_command(actor, command.kind, header.departments[0],
                                             step=getattr(command, "step", None), what=f"cooperation {cooperation_id}")
        update = act_on_cooperation(services.client, cooperation_id, actor, command, request_id,
                                    expected_seq=precondition.expected_seq if precondition else None)
        return await _answer("cooperation", cooperation_id, header, CLOSED_STAGES, update, precondition)


async def project_action(
    services: Services, project_id: str, actor: Actor, command: ProjectCommand, request_id: str,
    precondition: Precondition | None = None,
) -> ProjectState:
    with counted(command.kind):
        async with services.pool.acquire() as conn:
            header = await queries.project_header(conn, project_id)
        if header is not None:
            access.check_project_command(actor, command.kind, header.departments, what=f"project {project_id}")
        update = act_on_project(services.client, project_id, actor, command, request_id,
                                expected_seq=precondition.expected_seq if precondition else None)
        return await _answer("project", project_id, header, CLOSED_STATUSES, update, precondition)


async def _answer(what: str, record_id: str, known: queries.Header | None, closed: set,
                  update: Coroutine[Any, Any, T], precondition: Precondition | None) -> T:
    """Send the Update and hand the new version to the answer's ETag."""
    state = await _send(what, record_id, known, closed, update)
    if precondition is not None:
        precondition.answered(state.seq)  # type: ignore[attr-defined]  (T is a state with a seq)
    return state


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
