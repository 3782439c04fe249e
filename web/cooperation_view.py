"""What the cooperation page shows: the record as the API reads it, a timeline of everything
that happened, and which forms this user may use (the same rules as the API, domain/access.py;
a form hidden here would be refused there anyway, this only spares a useless click)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fastapi import Response

from api.routes import cooperations as api_cooperations
from api.routes import documents as api_documents
from api.services import Services, office_today
from db import departments as db_departments
from db import queries
from domain import access
from domain.audit import OFFICE_TZ
from domain.errors import DomainError
from domain.templates import default_milestone_dates
from web.session import Viewer
from web.vocabulary import labeller


@dataclass
class Entry:
    """One line of the timeline: when, what kind (an icon-free text label), and what."""

    on: date
    kind: str
    text: str
    by: str | None = None


async def load(services: Services, who: Viewer, cooperation_id: str) -> dict[str, Any]:
    """The cooperation as GET /api/v1/cooperations/{id} answers it (404 if not visible), with its
    documents as GET …/documents answers them (`documents`, each with its versions oldest first;
    each agreement's `draft_document` and `signed_original_document`, or None)."""
    cooperation = await api_cooperations.get_cooperation(cooperation_id, services, who.actor, Response())
    documents = await api_documents.list_documents(cooperation_id, services, who.actor)
    cooperation["documents"] = documents
    for agreement in cooperation["agreements"]:  # the forms' draft and signed-original selects
        for kind in ("draft", "signed_original"):
            agreement[f"{kind}_document"] = next(
                (d for d in documents if d["agreement_id"] == agreement["id"] and d["kind"] == kind and d["versions"]),
                None)
    return cooperation


async def choices(services: Services) -> dict[str, Any]:
    """What the forms' selects offer: organizations by kind, and departments."""
    async with services.pool.acquire() as conn:
        organizations = await queries.list_organizations(conn, None, None)
        departments = await db_departments.departments(conn)
    return {
        "organizations": [(o["id"], o["name"]) for o in organizations],
        "governments": [(o["id"], o["name"]) for o in organizations if o["kind"] != "company"],
        "companies": [(o["id"], o["name"]) for o in organizations if o["kind"] == "company"],
        "departments": [(d["name"], d["name"]) for d in departments],
    }


def timeline(cooperation: dict[str, Any], _: Any) -> list[Entry]:
    """Negotiation events, review decisions, signatures, projects, milestones and the end, newest first
    (within a day too: entries are gathered oldest first, and the sort keeps that order reversed)."""
    label = labeller(_)
    entries = [Entry(cooperation["created_at"].astimezone(OFFICE_TZ).date(), _("Opened"),
                     _("Cooperation opened by %(name)s", name=cooperation["created_by"]))]
    for event in cooperation["negotiation"]:
        entries.append(Entry(event["occurred_on"], _("Negotiation"),
                             f"{event['summary'] or ''}" + (f" ({event['place']})" if event["place"] else ""),
                             event["recorded_by"]))
    for agreement in cooperation["agreements"]:
        for decision in agreement["review_log"]:
            verb = _("approved") if decision["decision"] == "approved" else _("rejected")
            entries.append(Entry(_day(decision["at"]), _("Review"),
                                 f"{agreement['title']}: {label('step', decision['step'])} {verb}"
                                 + (f" — {decision['comment']}" if decision.get("comment") else ""), decision["by"]))
        for signature in agreement["signatures"]:
            entries.append(Entry(signature["signed_on"], _("Signature"),
                                 _("%(party)s signed %(title)s", party=_party_name(agreement, signature),
                                   title=agreement["title"]), signature["recorded_by"]))
    for project in cooperation["projects"]:
        entries.append(Entry(project["created_at"].astimezone(OFFICE_TZ).date(), _("Project"),
                             _("Project created: %(title)s", title=project["title"])))
        for milestone in project["milestones"]:
            for move in milestone["moves"]:
                entries.append(Entry(_day(move["moved_at"]), _("Due date moved"),
                                     f"{project['title']} · {milestone['name']}: {move['old_due_date']} → "
                                     f"{move['new_due_date']} ({move['reason']})", move["moved_by"]))
            if milestone["completed_on"]:
                entries.append(Entry(milestone["completed_on"], _("Milestone completed"),
                                     f"{project['title']} · {milestone['name']}", milestone["completed_by"]))
    if cooperation["stage"] == "terminated":
        entries.append(Entry(cooperation["updated_at"].astimezone(OFFICE_TZ).date(), _("Terminated"),
                             cooperation["termination_reason"] or ""))
    return sorted(reversed(entries), key=lambda e: e.on, reverse=True)


def _day(value: Any) -> date:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(OFFICE_TZ).date() if isinstance(value, datetime) else value


def _party_name(agreement: dict[str, Any], signature: dict[str, Any]) -> str:
    for party in agreement["parties"]:
        if party["organization_id"] == signature["organization_id"]:
            return party["organization_name"]
    return signature["organization_id"]


def permissions(who: Viewer, cooperation: dict[str, Any]) -> dict[str, bool]:
    """Which groups of forms to show this user."""
    department = cooperation["department"]
    open_ = cooperation["stage"] not in ("completed", "terminated")
    return {
        "edit": open_ and _allowed(lambda: access.check_cooperation_command(who.actor, "record_negotiation",
                                                                            department)),
        "review": open_ and (who.may(access.REVIEWER) or (who.may(access.LEADER)
                                                          and department in access.reach_of(who.actor))),
        "upload": open_ and _allowed(lambda: access.check_document_upload(who.actor, "review_comments", department)),
        "upload_any": open_ and _allowed(lambda: access.check_document_upload(who.actor, "draft", department)),
    }


def _allowed(check: Any) -> bool:
    try:
        check()
    except DomainError:
        return False
    return True


def may_review_step(who: Viewer, step: str) -> bool:
    return who.may(access.REVIEWER) if step.startswith("legal") else who.may(access.LEADER)


def template_milestones(cooperation: dict[str, Any]) -> list[tuple[str, str, date]]:
    """The default milestones, dated from the latest signed investment agreement (or today)."""
    signed = [a["signed_on"] for a in cooperation["agreements"] if a["kind"] == "investment" and a["signed_on"]]
    return default_milestone_dates(max(signed) if signed else office_today())
