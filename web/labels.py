"""The names of the lifecycle's stages, statuses, kinds and template milestones in the user's language.

The database and the API keep the enum values (`in_delivery`, `suspended`, …) and the
milestone template's names as created ("Construction start 开工"); pages show them through
these functions. Each takes the page's gettext `_` (`who._`, or `_` in a template) and
answers the value itself for anything it does not know, so a value added to the domain
later shows up plainly instead of breaking a page.
"""

from __future__ import annotations

from collections.abc import Callable

from domain.cooperation import AgreementKind, Stage
from domain.project import ProjectStatus
from domain.templates import DEFAULT_MILESTONES
from web.i18n import N_

Gettext = Callable[..., str]

STAGES: dict[str, str] = {  # keyed by value, as the database and the API give them
    Stage.negotiating.value: N_("Negotiating"),
    Stage.framework_signed.value: N_("Framework signed"),
    Stage.in_delivery.value: N_("In delivery"),
    Stage.completed.value: N_("Completed"),
    Stage.terminated.value: N_("Terminated"),
}
STAGE_ORDER: tuple[Stage, ...] = (Stage.negotiating, Stage.framework_signed, Stage.in_delivery, Stage.completed,
                                  Stage.terminated)
"""The lifecycle's order (README "Domain rules"), for funnels, select options and sorting."""

PROJECT_STATUSES: dict[str, str] = {
    ProjectStatus.planned.value: N_("Planned"),
    ProjectStatus.active.value: N_("Active"),
    ProjectStatus.suspended.value: N_("Suspended"),
    ProjectStatus.completed.value: N_("Completed"),
    ProjectStatus.cancelled.value: N_("Cancelled"),
}

AGREEMENT_KINDS: dict[str, str] = {
    AgreementKind.framework.value: N_("Framework agreement"),
    AgreementKind.investment.value: N_("Investment agreement"),
}

MILESTONES: dict[str, str] = {
    "company_registration": N_("Company registration"),
    "site": N_("Site / land secured"),
    "construction_start": N_("Construction start"),
    "completion": N_("Completion"),
    "operation": N_("Operation"),
    "investment_target": N_("Investment target reached"),
}
# A template milestone is stored under its bilingual name ("Construction start 开工"); its key
# is also its milestone id. Both lead to the label.
_TEMPLATE_KEY_BY_NAME = {name: key for key, name, _days in DEFAULT_MILESTONES}

ACTIONS: dict[str, str] = {
    "cooperation.created": N_("Cooperation opened"),
    "cooperation.terminated": N_("Cooperation terminated"),
    "cooperation.project_closed": N_("Project closed"),
    "negotiation.recorded": N_("Negotiation recorded"),
    "agreement.drafted": N_("Agreement drafted"),
    "agreement.edited": N_("Agreement edited"),
    "agreement.submitted": N_("Agreement submitted for review"),
    "agreement.review_approved": N_("Review step approved"),
    "agreement.review_rejected": N_("Review step rejected"),
    "agreement.party_signed": N_("Agreement signed by a party"),
    "agreement.signed": N_("Agreement signed"),
    "agreement.original_sealed": N_("Signed original sealed"),
    "document.uploaded": N_("Document uploaded"),
    "project.created": N_("Project created"),
    "project.suspended": N_("Project suspended"),
    "project.resumed": N_("Project resumed"),
    "project.cancelled": N_("Project cancelled"),
    "milestone.added": N_("Milestone added"),
    "milestone.moved": N_("Milestone due date moved"),
    "milestone.completed": N_("Milestone completed"),
    "investment.recorded": N_("Investment recorded"),
}
"""The lifecycle actions of the audit trail (domain/cooperation.py, domain/project.py)."""


def stage_label(stage: str, _: Gettext) -> str:
    """A cooperation's stage (domain.cooperation.Stage or its value): "in_delivery" → "In delivery" / "实施中"."""
    label = STAGES.get(str(stage))
    return _(label) if label else str(stage)


def status_label(status: str, _: Gettext) -> str:
    """A project's status (domain.project.ProjectStatus)."""
    label = PROJECT_STATUSES.get(str(status))
    return _(label) if label else str(status)


def agreement_kind_label(kind: str, _: Gettext) -> str:
    """An agreement's kind (domain.cooperation.AgreementKind): framework or investment."""
    label = AGREEMENT_KINDS.get(str(kind))
    return _(label) if label else str(kind)


def milestone_label(key_or_name: str, _: Gettext) -> str:
    """A template milestone by its key or stored name, in the user's language; any other
    milestone keeps the name staff gave it."""
    key = key_or_name if key_or_name in MILESTONES else _TEMPLATE_KEY_BY_NAME.get(key_or_name)
    return _(MILESTONES[key]) if key else str(key_or_name)


def action_label(action: str, _: Gettext) -> str:
    """A lifecycle action of the audit trail ("milestone.completed" → "Milestone completed")."""
    label = ACTIONS.get(action)
    return _(label) if label else str(action)


def overdue_label(days: int, _: Gettext) -> str:
    """How late an open milestone is, as text (never colour alone)."""
    return _("1 day overdue") if days == 1 else _("%(days)s days overdue", days=days)


def due_in_label(days: int, _: Gettext) -> str:
    """How soon an open milestone falls due: today, tomorrow, in N days."""
    if days == 0:
        return _("Due today")
    return _("Due tomorrow") if days == 1 else _("Due in %(days)s days", days=days)
