"""What both workflows share: refusal translation, request-id memory, write options."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.audit import ActionContext, Actor
    from domain.errors import DomainError

# The read-model write is one short PostgreSQL transaction. If PostgreSQL stays unreachable
# for 30 s the action fails as a whole (HTTP 503) and the workflow state is left untouched,
# because state is committed only after the write.
WRITE_OPTIONS = dict(
    start_to_close_timeout=timedelta(seconds=10),
    schedule_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=5)),
)

# Writes no caller waits for (the creation event, system reactions to signals) have
# nobody to refuse: they are retried until PostgreSQL is back instead of failing the workflow.
SYSTEM_WRITE_OPTIONS = dict(
    start_to_close_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30)),
)

# How many recent request ids a workflow remembers across continue-as-new: the Update
# id dedupes only within one run, so a client's resend after a rollover is caught here.
REMEMBERED_REQUESTS = 500


# workflow.patched id of the durable write (below); histories recorded before it replay the local activity.
DURABLE_WRITE = "write-after-accept"


async def write_event(activity: str, record: object, options: dict) -> None:
    """Run the read-model and audit write of one event.

    A regular activity, not a local one: it runs only after the workflow task that scheduled it
    (and accepted the Update) is in history. A local activity ran inside the task, and with
    concurrent Updates the server may drop a speculative task after its write had committed and
    let the next task pick another winner: the audit trail then held a losing writer's action
    (tests/faults/test_race.py found it). The price is one server round trip per action
    (measured in `make bench`)."""
    if workflow.patched(DURABLE_WRITE):
        await workflow.execute_activity(activity, record, **options)
    else:
        await workflow.execute_local_activity(activity, record, **options)


def refusal(error: DomainError) -> ApplicationError:
    """A rule violation as a non-retryable failure whose `type` the API maps to a status."""
    return ApplicationError(error.reason, type=error.kind, non_retryable=True)


def context(actor: Actor, request_id: str) -> ActionContext:
    return ActionContext(actor=actor, request_id=request_id, now=workflow.now())


class RequestMemory:
    """A bounded, ordered set of handled request ids, carried through continue-as-new."""

    def __init__(self, ids: list[str]) -> None:
        self._ids = list(ids[-REMEMBERED_REQUESTS:])
        self._set = set(self._ids)

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._set

    def add(self, request_id: str) -> None:
        self._ids.append(request_id)
        self._set.add(request_id)
        if len(self._ids) > REMEMBERED_REQUESTS:
            self._set.discard(self._ids.pop(0))

    def as_list(self) -> list[str]:
        return list(self._ids)


class RolloverPolicy:
    """Decides when a years-long workflow should continue as new."""

    def __init__(self, after_events: int | None) -> None:
        self._after_events = after_events
        self.events_this_run = 0

    def due(self) -> bool:
        if self._after_events is not None and self.events_this_run >= self._after_events:
            return True
        return workflow.info().is_continue_as_new_suggested()


def event_fields(seq: int, ctx: ActionContext, change: object) -> dict:
    """The fields every event record shares: where it comes from, who acted, what changed."""
    info = workflow.info()
    return dict(workflow_id=info.workflow_id, run_id=info.run_id, seq=seq, occurred_at=ctx.now,
                actor=ctx.actor, request_id=ctx.request_id, change=change)
