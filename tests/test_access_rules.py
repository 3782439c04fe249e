"""The access rules as pure functions: who sees which department's records, who may do what."""

from __future__ import annotations

import pytest

from domain.access import (
    Forbidden,
    Invisible,
    check_audit_reader,
    check_cooperation_command,
    check_create_cooperation,
    check_project_command,
    check_settings_edit,
    view_of,
)
from domain.audit import SYSTEM_ACTOR, Actor

BUREAU, OFFICE, PARK, LEGAL = "Investment Promotion Bureau", "Project Office", "Park Committee", "Legal Affairs"


def actor(*roles: str, department: str | None = BUREAU, reach: tuple[str, ...] = (), user: str = "u1") -> Actor:
    return Actor(user_id=user, name=user, role=roles[0], roles=roles, department=department, reach=reach)


OFFICER = actor("liaison_officer")
OTHER_OFFICER = actor("liaison_officer", department=PARK)
LEADER = actor("leader", reach=(OFFICE,))
REVIEWER = actor("reviewer", department=LEGAL)
AUDITOR = actor("auditor", department=None)
ADMIN = actor("admin", department=None)


def refused(kind: type[Exception], call, *args, **kwargs) -> str:
    with pytest.raises(kind) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def test_who_sees_which_department() -> None:
    assert view_of(OFFICER).sees([BUREAU]) and not view_of(OFFICER).sees([OFFICE, PARK])
    assert view_of(LEADER).sees([BUREAU]) and view_of(LEADER).sees([OFFICE]) and not view_of(LEADER).sees([PARK])
    assert view_of(AUDITOR).everything and view_of(REVIEWER).everything and view_of(SYSTEM_ACTOR).everything
    assert not view_of(ADMIN).sees([BUREAU, OFFICE, PARK, None])
    assert not view_of(OFFICER).sees([None])  # a record of no department is nobody's to edit


def test_liaison_officers_edit_their_own_department_only() -> None:
    check_cooperation_command(OFFICER, "draft_agreement", BUREAU)
    assert refused(Invisible, check_cooperation_command, OTHER_OFFICER, "draft_agreement", BUREAU) == \
        "cooperation not found"
    assert "liaison officer" in refused(Forbidden, check_cooperation_command, LEADER, "draft_agreement", BUREAU)
    assert "liaison officer" in refused(Forbidden, check_cooperation_command, AUDITOR, "terminate", BUREAU)
    check_create_cooperation(OFFICER, BUREAU)
    assert "own department" in refused(Forbidden, check_create_cooperation, OFFICER, PARK)
    assert refused(Forbidden, check_create_cooperation, LEADER, BUREAU)


def test_review_steps_go_to_reviewers_and_leaders_never_to_the_drafter() -> None:
    check_cooperation_command(REVIEWER, "decide_review_step", PARK, step="legal_review", authors=["u9"])
    check_cooperation_command(LEADER, "decide_review_step", OFFICE, step="leadership_approval", authors=["u9"])
    assert "reviewer" in refused(Forbidden, check_cooperation_command, LEADER, "decide_review_step", BUREAU,
                                 step="legal_review")
    assert "leader" in refused(Forbidden, check_cooperation_command, REVIEWER, "decide_review_step", BUREAU,
                               step="leadership_approval")
    far_leader = actor("leader", department=PARK)
    assert refused(Invisible, check_cooperation_command, far_leader, "decide_review_step", BUREAU,
                   step="leadership_approval")
    both = actor("liaison_officer", "reviewer", "leader", user="drafter")
    assert "drafted" in refused(Forbidden, check_cooperation_command, both, "decide_review_step", BUREAU,
                                step="legal_review", authors=["drafter"])


def test_projects_belong_to_their_department_and_their_cooperation_department() -> None:
    check_project_command(OFFICER, "complete_milestone", [PARK, BUREAU])
    check_project_command(OTHER_OFFICER, "complete_milestone", [PARK, BUREAU])
    assert refused(Invisible, check_project_command, actor("liaison_officer", department=LEGAL), "cancel",
                   [PARK, BUREAU]) == "project not found"
    assert refused(Forbidden, check_project_command, LEADER, "cancel", [BUREAU])
    assert refused(Forbidden, check_project_command, OFFICER, "rename_everything", [BUREAU])
    check_project_command(SYSTEM_ACTOR, "cancel", [PARK])


def test_settings_audit_and_admins() -> None:
    check_settings_edit(OFFICER, [BUREAU])
    check_settings_edit(LEADER, [OFFICE])
    assert refused(Forbidden, check_settings_edit, AUDITOR, [BUREAU])
    assert refused(Invisible, check_settings_edit, ADMIN, [BUREAU])
    check_audit_reader(AUDITOR)
    for someone in (OFFICER, LEADER, REVIEWER, ADMIN):
        assert "auditor" in refused(Forbidden, check_audit_reader, someone)
