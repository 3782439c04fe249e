"""Names of the workflow's codes as staff read them, for templates: `label("stage", "negotiating")`.

Negotiation kinds, agreement statuses, review steps, organization kinds and recipient roles
are named here; stages and project statuses come from web/labels.py, the one list of them."""

from __future__ import annotations

from collections.abc import Callable

from web.i18n import N_
from web.labels import PROJECT_STATUSES, STAGES

LABELS: dict[str, dict[str, str]] = {
    "negotiation": {
        "meeting": N_("Meeting"), "inspection_visit": N_("Inspection visit"), "forum": N_("Forum"),
        "draft_version": N_("Draft version"), "note": N_("Note"),
    },
    "agreement_status": {
        "draft": N_("Draft"), "in_review": N_("In review"), "approved": N_("Approved, awaiting signatures"),
        "signed": N_("Signed"),
    },
    "agreement_kind": {
        "framework": N_("Strategic cooperation framework agreement"),
        "investment": N_("Project investment agreement"),
    },
    "step": {"legal_review": N_("Legal review"), "leadership_approval": N_("Leadership approval")},
    "step_status": {"pending": N_("Pending"), "approved": N_("Approved")},
    "organization_kind": {
        "government": N_("Government"), "park_committee": N_("Park management committee"),
        "bureau": N_("Bureau or office"), "company": N_("Company"),
    },
    "role": {
        "liaison_officer": N_("Liaison officer"), "reviewer": N_("Reviewer (legal affairs)"),
        "leader": N_("Leader"), "auditor": N_("Auditor"), "admin": N_("Administrator"),
    },
    "recipient": {
        "liaison_officer": N_("Liaison officer"), "owner": N_("Milestone owner"),
        "department_leader": N_("Department leader"), "leadership_office": N_("Leadership office"),
    },
    "stage": STAGES,
    "project_status": PROJECT_STATUSES,
}


def labeller(_: Callable[..., str]) -> Callable[[str, str | None], str]:
    """`label("stage", "negotiating")` → "洽谈中"; an unknown code is shown as it is."""

    def label(group: str, code: str | None) -> str:
        if code is None:
            return "–"
        text = LABELS.get(group, {}).get(str(code))
        return _(text) if text else str(code)

    return label
