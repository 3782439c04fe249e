"""Messages between workflows, activities and the API: envelopes, inputs, event records."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from domain.audit import ActionContext, Actor, Change
from domain.cooperation import CooperationCommand, CooperationState, CreateCooperation
from domain.project import NewProject, ProjectCommand, ProjectState
from domain.reminders import ReminderMemory

# Activity names, shared so that workflows need not import the activity module (and asyncpg).
RECORD_COOPERATION_EVENT = "record_cooperation_event"
RECORD_PROJECT_EVENT = "record_project_event"
LOAD_REMINDER_SETUP = "load_reminder_setup"
DELIVER_NOTICE = "deliver_notice"
REPORT_FAILED_DELIVERY = "report_failed_delivery"


def cooperation_workflow_id(cooperation_id: str) -> str:
    return f"cooperation-{cooperation_id}"


def project_workflow_id(project_id: str) -> str:
    return f"project-{project_id}"


class CooperationAction(BaseModel):
    """One staff action on a cooperation; `request_id` makes a resend a no-op."""

    request_id: str
    actor: Actor
    command: CooperationCommand
    # The version (state `seq`) the client last saw, from If-Match: the action is refused as
    # "Stale" if the record has moved on. None (and every recorded history) checks nothing.
    expected_seq: int | None = None


class ProjectAction(BaseModel):
    request_id: str
    actor: Actor
    command: ProjectCommand
    expected_seq: int | None = None  # as in CooperationAction


class CooperationInput(BaseModel):
    """First start carries `create`; a continue-as-new carries `state` instead."""

    cooperation_id: str
    create: CreateCooperation | None = None
    creator: ActionContext | None = None
    state: CooperationState | None = None
    handled_request_ids: list[str] = Field(default_factory=list)
    # Tests set this to force continue-as-new after so many events; production waits for Temporal's hint.
    continue_as_new_after: int | None = None


class ProjectInput(BaseModel):
    new: NewProject | None = None
    state: ProjectState | None = None
    handled_request_ids: list[str] = Field(default_factory=list)
    reminders: ReminderMemory | None = None
    continue_as_new_after: int | None = None


class CooperationEventRecord(BaseModel):
    """What the read-model activity writes for one accepted cooperation action."""

    workflow_id: str
    run_id: str
    seq: int
    occurred_at: datetime
    actor: Actor
    request_id: str
    change: Change
    state: CooperationState
    new_project: NewProject | None = None


class ProjectEventRecord(BaseModel):
    workflow_id: str
    run_id: str
    seq: int
    occurred_at: datetime
    actor: Actor
    request_id: str
    change: Change
    state: ProjectState
