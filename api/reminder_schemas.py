"""Request and response shapes of the reminder endpoints."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.reminders import (
    DEFAULT_POLICY,
    EscalationStep,
    Notice,
    NoticeMove,
    RecipientRole,
    ReminderPolicy,
    WorkingDayOffset,
)
from domain.types import LongText, Name


class Recipient(BaseModel):
    user_id: str
    name: str
    channels: list[str]


class NoticePreview(Notice):
    """A notice owed, with whom it reaches today (department webhooks are not listed)."""

    recipients: list[Recipient]


class WhatIfView(BaseModel):
    milestone_id: str
    current_due_date: date
    new_due_date: date
    current: list[NoticePreview]
    if_moved: list[NoticePreview]


class DeliveryView(BaseModel):
    """One sent (or failed) notice, with "why did I get this": the notice holds the rule, the policy
    and calendar versions and the due-date version that produced it."""

    delivery_id: str
    notice_key: str
    milestone_id: str
    recipient_role: str
    recipient_id: str | None
    recipient_name: str | None
    channel: str
    status: str
    planned_for: datetime
    scheduled_for: datetime
    dispatched_at: datetime
    delivered_at: datetime | None
    attempts: int
    last_error: str | None
    message_id: str | None
    notice: dict[str, Any]


class PolicyIn(BaseModel):
    """A reminder policy; omitted fields take the office default. Offsets are working days (1-400)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    before_working_days: list[WorkingDayOffset] = Field(
        default_factory=lambda: list(DEFAULT_POLICY.before_working_days))
    on_due_date: bool = True
    overdue_every_days: int | None = Field(default=7, ge=1, le=400)
    escalation: list[EscalationStep] = Field(default_factory=lambda: list(DEFAULT_POLICY.escalation))
    recipient: RecipientRole = RecipientRole.owner
    note: LongText | None = None


class PolicyVersionView(BaseModel):
    version: int
    active: bool
    policy: ReminderPolicy | None
    note: str | None
    created_by: str
    created_at: datetime


class PolicyView(BaseModel):
    scope: str
    scope_id: str
    effective: ReminderPolicy | None
    """The policy this scope sets; None when it sets none and the next scope up applies."""
    inherits: bool
    history: list[PolicyVersionView]


class CalendarVersionView(BaseModel):
    version: int
    note: str | None
    created_by: str
    created_at: datetime
    covered_years: list[int] | None


class CalendarView(BaseModel):
    name: str
    version: int
    covered_years: list[int]
    """Years with official data; other years count Monday to Friday and notices say "estimated"."""
    versions: list[CalendarVersionView]


class CalendarYearView(BaseModel):
    year: int
    version: int
    official: bool
    holidays: list[date]
    workdays: list[date]


class CalendarYearIn(BaseModel):
    """One year's public holidays and adjusted working weekend days (调休), as published."""

    model_config = ConfigDict(extra="forbid")

    expected_version: int = Field(ge=1, description="The calendar version this change was previewed against")
    holidays: set[date] = Field(max_length=120)
    workdays: set[date] = Field(default_factory=set, max_length=30)
    note: LongText | None = None


class CalendarYearPreview(BaseModel):
    current_version: int
    new_version: int
    moves: list[NoticeMove]
