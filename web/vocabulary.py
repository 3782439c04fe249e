"""Names of the workflow's codes as staff read them (negotiation kinds, agreement statuses,
review steps, organization kinds): marked for the catalog, translated where shown."""

from __future__ import annotations

from collections.abc import Callable

from web.i18n import N_

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
    "recipient": {
        "liaison_officer": N_("Liaison officer"), "owner": N_("Milestone owner"),
        "department_leader": N_("Department leader"), "leadership_office": N_("Leadership office"),
    },
    "stage": {
        "negotiating": N_("Negotiating"), "framework_signed": N_("Framework signed"),
        "in_delivery": N_("In delivery"), "completed": N_("Completed"), "terminated": N_("Terminated"),
    },
    "project_status": {
        "planned": N_("Planned"), "active": N_("Active"), "suspended": N_("Suspended"),
        "completed": N_("Completed"), "cancelled": N_("Cancelled"),
    },
}


def labeller(_: Callable[..., str]) -> Callable[[str, str | None], str]:
    """`label("stage", "negotiating")` → "洽谈中"; an unknown code is shown as it is."""

    def label(group: str, code: str | None) -> str:
        if code is None:
            return "–"
        text = LABELS.get(group, {}).get(str(code))
        return _(text) if text else str(code)

    return label
