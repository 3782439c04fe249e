"""Request and response shapes of the administration endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.notice_schemas import EmailAddress
from domain.types import Identifier, Name

Role = Literal["liaison_officer", "reviewer", "leader", "auditor", "admin"]


class DepartmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    parent: Name | None = Field(default=None, description="The department it sits under; none: top level")


class DepartmentMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parent: Name | None


class Department(BaseModel):
    name: str
    parent: str | None
    path: str
    depth: int
    users: int


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Identifier
    display_name: Name
    department: Name
    roles: list[Role] = Field(min_length=1, max_length=5)
    email: EmailAddress | None = None
    language: Literal["zh", "en"] = "zh"


class UserChange(BaseModel):
    """Only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    display_name: Name | None = None
    department: Name | None = None
    email: EmailAddress | None = None
    language: Literal["zh", "en"] | None = None


class RolesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: list[Role] = Field(min_length=1, max_length=5)


class User(BaseModel):
    id: str
    username: str
    display_name: str
    department: str | None
    roles: list[str]
    email: str | None
    language: str
    has_password: bool
    created_at: datetime
    disabled_at: datetime | None


class Disabled(User):
    sessions_revoked: int
    tokens_revoked: int
