"""A confirmed import row through the normal workflow actions, as staff would enter it.

Each valid row becomes, in order: the cooperation (opened by the uploader, a liaison officer
of their own department), a negotiation note saying where it came from, the framework
agreement (drafted, submitted, reviewed, signed by both parties on the file's date), the
investment agreement (the same, on its date) and the project under it, with the default
milestones dated from that signing. Every step is an ordinary action through the API's own
handlers (api/routes/cooperations.py): the same checks, one audit event each, and the
project's reminders like any other project's.

How history stays honest: the agreements were reviewed and signed before Accord existed,
outside it. Nobody in Accord reviewed them, so no reviewer is named: the review steps are
decided by the system actor "Accord import" (domain/access.py lets the system act, as it does
for the workflows' own actions; separation of duties concerns people), each decision's comment
says "imported from <file> row N", and so does the user agent of every event of the row. The
signatures are recorded by the uploader with their real dates; signatories are "not recorded".

Idempotency: every request id is derived from the file's SHA-256 and the row number, and every
record id from the request id (api.services.new_id), so applying the same row again (a retry,
a second upload of the same file) names the same cooperation and the same actions, which the
workflow recognises; the natural key (partner + project title) stops it before that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from fastapi import Response

from api.routes import cooperations
from api.schemas import (AgreementIn, CooperationIn, NegotiationEventIn, PartyIn, ProjectIn, ReviewDecisionIn,
                         SignatureIn)
from api.services import Services, new_id, office_today
from domain import access
from domain.audit import Actor
from domain.cooperation import AgreementKind, NegotiationKind
from domain.templates import DEFAULT_REVIEW_CHAIN

NOT_RECORDED = "未记录 (not recorded)"


@dataclass(frozen=True)
class Source:
    """Where a row came from: the batch, the file and the row number the user sees."""

    batch_id: str
    file_name: str
    sha256: str
    row: int

    @property
    def label(self) -> str:
        return f"imported from {self.file_name} row {self.row}"

    def request_id(self, step: str) -> str:
        return f"import-{self.sha256[:24]}-r{self.row}-{step}"


def importer(uploader: Actor, source: Source) -> Actor:
    """The system actor that records the review decisions taken before Accord, on the uploader's behalf."""
    return Actor(user_id="system:import", name=f"Accord import (for {uploader.name})", role=access.SYSTEM,
                 roles=(access.SYSTEM,), auth_method="import", department=uploader.department,
                 source_ip=uploader.source_ip, user_agent=source.label)


async def apply_row(services: Services, uploader: Actor, source: Source, values: dict[str, Any]) -> dict[str, str]:
    """Run the row's actions; → {cooperation_id, project_id}. Raises what the actions raise."""
    staff = uploader.model_copy(update={"user_agent": source.label})
    system = importer(uploader, source)
    created = await cooperations.create(CooperationIn(
        title=values["cooperation_title"], lead_organization_id=values["lead_id"],
        partner_organization_id=values["partner_id"], liaison_officer=values["officer"],
        department=uploader.department, started_on=date.fromisoformat(values["framework_signed_on"]),
        description=f"{source.label} (import batch {source.batch_id})",
    ), services, staff, source.request_id("create"), Response())
    cooperation_id = created.cooperation_id
    await cooperations.record_negotiation(cooperation_id, NegotiationEventIn(
        kind=NegotiationKind.note, occurred_on=office_today(), summary=_note(uploader, source, values),
    ), services, staff, None, source.request_id("note"))
    parties = [PartyIn(organization_id=values[key], signatory_name=NOT_RECORDED, signatory_title=NOT_RECORDED)
               for key in ("lead_id", "partner_id")]
    for kind, signed_on in ((AgreementKind.framework, values["framework_signed_on"]),
                            (AgreementKind.investment, values["signed_on"])):
        await _signed_agreement(services, staff, system, source, cooperation_id, kind, parties,
                                date.fromisoformat(signed_on), values)
    investment_id = new_id(source.request_id("investment-draft"), "agreement")
    request_id = source.request_id("project")
    await cooperations.create_project(cooperation_id, ProjectIn(
        agreement_id=investment_id, title=values["project_title"], site=values.get("site"),
        committed_investment=Decimal(values["committed"]), responsible_department=values["department"],
        responsible_officer=values["officer"],
    ), services, staff, None, request_id)
    return {"cooperation_id": cooperation_id, "project_id": new_id(request_id, "project")}


async def _signed_agreement(services: Services, staff: Actor, system: Actor, source: Source, cooperation_id: str,
                            kind: AgreementKind, parties: list[PartyIn], signed_on: date,
                            values: dict[str, Any]) -> None:
    """Draft, submit, review (system, with the source), and both signatures on the real date."""
    name = "framework" if kind == AgreementKind.framework else "investment"
    title = (f"{values['cooperation_title']} 战略合作框架协议" if kind == AgreementKind.framework
             else f"{values['project_title']} 项目投资协议")
    draft = source.request_id(f"{name}-draft")
    await cooperations.draft_agreement(cooperation_id, AgreementIn(kind=kind, title=title, parties=parties),
                                       services, staff, None, draft)
    agreement_id = new_id(draft, "agreement")
    await cooperations.submit_agreement(cooperation_id, agreement_id, services, staff, None,
                                        source.request_id(f"{name}-submit"))
    comment = f"{source.label}: signed {signed_on.isoformat()} before Accord; reviewed outside Accord"
    for step in DEFAULT_REVIEW_CHAIN:
        await cooperations.approve_step(cooperation_id, agreement_id, step, services, system, None,
                                        source.request_id(f"{name}-{step}"), ReviewDecisionIn(comment=comment))
    for party in parties:
        await cooperations.sign_agreement(cooperation_id, agreement_id, SignatureIn(
            organization_id=party.organization_id, signed_on=signed_on,
        ), services, staff, None, source.request_id(f"{name}-sign-{party.organization_id}"))


def _note(uploader: Actor, source: Source, values: dict[str, Any]) -> str:
    return (f"Imported from {source.file_name} row {source.row} (import batch {source.batch_id}, "
            f"file SHA-256 {source.sha256}) by {uploader.name}. The framework agreement was signed on "
            f"{values['framework_signed_on']} and the investment agreement on {values['signed_on']}, before "
            "Accord: their review steps are recorded by the import (system), not by a reviewer.")
