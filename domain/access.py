"""Who may see and do what to which record: the one place that decides.

The API asks it before it reads or sends anything (first line); the workflows ask it
again in their update validators with the actor the API passed along (second line),
so a caller that skips the API still cannot act beyond its rights. Everything here
is pure: the actor carries its roles, its department and the departments its
leadership reaches (`Actor.reach`, computed from the department tree at sign-in).

The roles:

* liaison officer: creates and edits the cooperations of their own department, and
  the projects their department runs or whose cooperation it leads;
* reviewer: the legal affairs office; reads every cooperation and decides legal-review
  steps (any review step whose name starts with "legal");
* leader: reads everything in their department and below; decides the other review
  steps (approvals) there; receives escalations;
* auditor: reads everything, including the audit trail; changes nothing;
* admin: users, departments, roles and organization policies; no business reads or edits.

Separation of duties: whoever drafted or edited an agreement cannot decide its review
steps. Another department's record is invisible (the API answers 404, never 403, so
ids cannot be probed); a visible record the actor may not change answers 403.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from domain.audit import Actor
from domain.errors import DomainError

LIAISON_OFFICER, REVIEWER, LEADER, AUDITOR, ADMIN = "liaison_officer", "reviewer", "leader", "auditor", "admin"
ROLES = (LIAISON_OFFICER, REVIEWER, LEADER, AUDITOR, ADMIN)
SYSTEM = "system"

COOPERATION_EDITS = frozenset({
    "create_cooperation", "record_negotiation", "draft_agreement", "edit_agreement", "submit_agreement",
    "sign_agreement", "seal_signed_original", "create_project", "terminate",
})
PROJECT_EDITS = frozenset({
    "add_milestone", "move_milestone", "complete_milestone", "record_investment", "suspend", "resume", "cancel",
})


class Forbidden(DomainError):
    """Visible, but not the actor's to change (HTTP 403)."""

    kind = "Forbidden"


class Invisible(DomainError):
    """Not the actor's to see: answered exactly like a record that does not exist (HTTP 404)."""

    kind = "NotFound"


def is_system(actor: Actor) -> bool:
    return actor.role == SYSTEM or actor.auth_method == "workflow"


def roles_of(actor: Actor) -> frozenset[str]:
    return frozenset(actor.roles or (actor.role,))


def reach_of(actor: Actor) -> frozenset[str]:
    """The departments a leader's view covers: their own and every one below it."""
    own = {actor.department} if actor.department else set()
    return frozenset(actor.reach) | own


@dataclass(frozen=True)
class View:
    """Which departments' records an actor sees: `everything`, or those in `departments`."""

    everything: bool
    departments: frozenset[str]

    def sees(self, departments: Iterable[str | None]) -> bool:
        return self.everything or any(d in self.departments for d in departments if d)


def view_of(actor: Actor) -> View:
    roles = roles_of(actor)
    if is_system(actor) or roles & {AUDITOR, REVIEWER}:
        return View(True, frozenset())
    departments: set[str] = set()
    if LEADER in roles:
        departments |= reach_of(actor)
    if LIAISON_OFFICER in roles and actor.department:
        departments.add(actor.department)
    return View(False, frozenset(departments))


def visible_departments(actor: Actor) -> list[str] | None:
    """For list queries: the departments whose records the actor sees; None: every department."""
    view = view_of(actor)
    return None if view.everything else sorted(view.departments)


def check_visible(actor: Actor, departments: Iterable[str | None], what: str) -> None:
    if not view_of(actor).sees(departments):
        raise Invisible(f"{what} not found")


# ---------------------------------------------------------------- changes


def check_cooperation_command(actor: Actor, kind: str, department: str | None, *, step: str | None = None,
                              authors: Iterable[str] = (), what: str = "cooperation") -> None:
    """May `actor` run a cooperation command of `kind` on a cooperation of `department`?

    `step` and `authors` describe a review decision: the step decided and who drafted or
    edited the agreement.
    """
    if is_system(actor) or kind == "project_closed":
        return
    check_visible(actor, [department], what)
    roles = roles_of(actor)
    if kind == "decide_review_step":
        _check_review(actor, roles, department, step or "", authors)
    elif kind in COOPERATION_EDITS:
        if LIAISON_OFFICER not in roles or department != actor.department:
            raise Forbidden("only a liaison officer of the cooperation's department may do this")
    else:
        raise Forbidden(f"unknown action {kind}")


def _check_review(actor: Actor, roles: frozenset[str], department: str | None, step: str,
                  authors: Iterable[str]) -> None:
    if actor.user_id in set(authors):
        raise Forbidden("whoever drafted or edited an agreement cannot decide its review steps")
    if step.startswith("legal"):
        if REVIEWER not in roles:
            raise Forbidden(f"the {step} step is decided by a reviewer (legal affairs)")
    elif LEADER not in roles or department not in reach_of(actor):
        raise Forbidden(f"the {step} step is decided by a leader of the cooperation's department")


def check_create_cooperation(actor: Actor, department: str | None) -> None:
    """A liaison officer opens cooperations for their own department only."""
    if LIAISON_OFFICER not in roles_of(actor):
        raise Forbidden("only a liaison officer may open a cooperation")
    if department != actor.department:
        raise Forbidden(f"a liaison officer opens cooperations for their own department ({actor.department})")


def check_document_upload(actor: Actor, kind: str, department: str | None, what: str = "cooperation") -> None:
    """Who may add a document (or a version) to a cooperation of `department`.

    The cooperation's liaison officers keep its documents; a reviewer or a leader over the
    department who decides review steps may add review comments."""
    check_visible(actor, [department], what)
    roles = roles_of(actor)
    if LIAISON_OFFICER in roles and department == actor.department:
        return
    if kind == "review_comments" and (REVIEWER in roles or (LEADER in roles and department in reach_of(actor))):
        return
    if kind == "review_comments":
        raise Forbidden("review comments are added by the cooperation's liaison officers, reviewers and its leaders")
    raise Forbidden("only a liaison officer of the cooperation's department may add its documents")


def check_project_command(actor: Actor, kind: str, departments: Iterable[str | None],
                          what: str = "project") -> None:
    """`departments`: the project's responsible department and its cooperation's department;
    a liaison officer of either may act on it."""
    if is_system(actor):
        return
    departments = [d for d in departments if d]
    check_visible(actor, departments, what)
    if kind not in PROJECT_EDITS:
        raise Forbidden(f"unknown action {kind}")
    if LIAISON_OFFICER not in roles_of(actor) or actor.department not in departments:
        raise Forbidden("only a liaison officer of the project's department may do this")


def check_settings_edit(actor: Actor, departments: Iterable[str | None] = (), what: str = "project") -> None:
    """Project and milestone reminder policies: the project's liaison officer or a leader over it."""
    departments = [d for d in departments if d]
    check_visible(actor, departments, what)
    roles = roles_of(actor)
    if LIAISON_OFFICER in roles and actor.department in departments:
        return
    if LEADER in roles and reach_of(actor) & set(departments):
        return
    raise Forbidden("only the project's liaison officer or a leader over it may change its reminders")


def has_admin(actor: Actor) -> bool:
    return ADMIN in roles_of(actor)


def manages_department(actor: Actor, department: str) -> bool:
    """Department-wide settings (chat-robot webhooks) are an admin's, or a leader's over the department."""
    roles = roles_of(actor)
    return ADMIN in roles or (LEADER in roles and department in reach_of(actor))


def check_department_manager(actor: Actor, department: str) -> None:
    if manages_department(actor, department):
        return
    raise Forbidden(f"only an admin or a leader over {department} may change its notification settings")


def check_department_feed(actor: Actor, department: str) -> None:
    if not view_of(actor).sees([department]):
        raise Forbidden(f"you can subscribe only to departments whose records you see, not {department}")


def check_reference_data_edit(actor: Actor) -> None:
    """Organizations and their people: registered by liaison officers (and admins)."""
    if not roles_of(actor) & {LIAISON_OFFICER, ADMIN}:
        raise Forbidden("only a liaison officer or an admin may register organizations and people")


def check_audit_reader(actor: Actor) -> None:
    if AUDITOR not in roles_of(actor):
        raise Forbidden("only an auditor may search, export or verify the audit trail")
