"""Who acted, and what one accepted action changed: the raw material of an audit row."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, Field


class Actor(BaseModel):
    """The authenticated user (or the system) on whose behalf an action runs."""

    user_id: str
    name: str
    role: str = "user"
    """The first role granted; what the audit trail's `actor_role` records."""
    roles: tuple[str, ...] = ()
    """Every role the user holds (empty for the system and for actors recorded before roles)."""
    auth_method: str = "api_token"
    department: str | None = None
    reach: tuple[str, ...] = ()
    """The departments below the actor's own, which a leader's view covers (domain/access.py)."""
    # Where the request came from; recorded with every event the action causes.
    source_ip: str | None = None
    user_agent: str | None = None

    def has_role(self, *roles: str) -> bool:
        return any(r in (self.roles or (self.role,)) for r in roles)


SYSTEM_ACTOR = Actor(user_id="system", name="Accord workflow", role="system", auth_method="workflow")


# China has one time zone and no daylight saving: a fixed offset needs no tz database,
# which keeps workflow code free of file reads.
OFFICE_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")


class ActionContext(BaseModel):
    """Everything an action needs besides its own fields; `now` comes from the workflow clock."""

    actor: Actor
    request_id: str
    now: datetime

    def today(self) -> date:
        """The office's calendar date: a signature on 1 December in Guangzhou is dated 1 December."""
        return self.now.astimezone(OFFICE_TZ).date()


class Change(BaseModel):
    """One accepted action as the audit trail records it."""

    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] = Field(default_factory=dict)
    after: dict[str, Any] = Field(default_factory=dict)
    comment: str | None = None


def snapshot(model: BaseModel | None, exclude: set[str] | None = None) -> dict[str, Any]:
    """A JSON-safe dump of an entity, or {} when there was none."""
    if model is None:
        return {}
    return model.model_dump(mode="json", exclude=exclude)


def diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the fields that changed, as (before, after): an auditor wants the delta."""
    keys = sorted(set(before) | set(after))
    changed = [k for k in keys if before.get(k) != after.get(k)]
    return ({k: before.get(k) for k in changed if k in before}, {k: after.get(k) for k in changed if k in after})


def change_of(
    action: str,
    entity_type: str,
    entity_id: str,
    before: BaseModel | None,
    after: BaseModel | None,
    comment: str | None = None,
    exclude: set[str] | None = None,
) -> Change:
    """Build a Change holding only the changed fields of one entity."""
    old, new = diff(snapshot(before, exclude), snapshot(after, exclude))
    return Change(action=action, entity_type=entity_type, entity_id=entity_id, before=old, after=new, comment=comment)
