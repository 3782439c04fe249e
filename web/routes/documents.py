"""Agreement documents on the pages: upload a version, verify a version against the store,
compare two versions, seal the signed original of an agreement signed before its scan.

Every action calls the JSON API's own handler (api/routes/documents.py) as a function: the
same streaming upload, type and size checks, access rules, audit events. The upload form is
multipart; it is read by `api.uploads.receive_upload` straight into the store's staging area
(never by `request.form()`), and its CSRF token is checked from the parsed fields before
anything is stored. The download and view links go to the API itself, which takes the
session cookie for a GET.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam

from api.errors import ApiError
from api.routes import documents as api
from api.schemas import SealIn
from api.uploads import Upload, receive_upload
from web import cooperation_view as view
from web.actions import FormState, perform, read_form, text
from web.forms import FormErrors, redirect
from web.pages import render
from web.routes.cooperations import again_on
from web.session import Viewer, check_form, services_of, viewer
from web.vocabulary import labeller

router = APIRouter()
UPLOAD_FIELDS = ("kind", "agreement_id", "negotiation_event_id", "note", "comments_on")
"""What the page's upload form sends beside the file, csrf_token and form_key."""


def _size(limit: int) -> str:
    return f"{limit / (1024 * 1024):g} MiB"


@router.post("/cooperations/{cooperation_id}/documents")
async def upload(request: Request, cooperation_id: str) -> Response:
    """Upload a document version from the cooperation page (multipart, streamed)."""
    who = await viewer(request)
    services = services_of(request)
    again = again_on(request, who, cooperation_id)
    # As the API does: 404 for a cooperation this user may not see, 403 for one they may add
    # nothing to, before a byte of the body is read.
    department = await api.visible_department(services, who.actor, cooperation_id)
    api.check_may_upload(who.actor, department)
    try:
        received = await receive_upload(request, api.staging_dir(services), services.document_max_bytes)
    except ApiError as error:  # nothing is left staged (receive_upload's promise)
        if error.status == 413:
            errors = FormErrors({"file": who._("The file is larger than the limit of %(size)s.",
                                               size=_size(services.document_max_bytes))}, status=413)
        else:
            errors = FormErrors(general=who._("The upload could not be read; choose the file and send the form "
                                              "again."), status=422)
        return await again(FormState("document", {}, errors), errors.status)
    try:
        check_form(request, who, received.fields.get("csrf_token"))
    except BaseException:
        received.discard()
        raise
    values = dict(received.fields)
    created: dict[str, bool] = {}

    async def act(request_id: str) -> str:
        fields = {k: v for k, v in values.items() if k in UPLOAD_FIELDS}
        if fields.get("kind") == "material":
            fields.pop("agreement_id", None)  # the agreement select is not for negotiation material
        else:
            fields.pop("negotiation_event_id", None)
        if fields.get("kind") != "review_comments":
            fields.pop("comments_on", None)
        if received.file is None or not received.file_name:
            raise FormErrors({"file": who._("Choose a file to upload.")})
        try:
            answer = await api.store_upload(services, who.actor, cooperation_id,
                                            Upload(fields, received.file, received.file_name), request_id)
        except ApiError as error:
            if error.status == 415:
                raise FormErrors({"file": who._("This type of file is not accepted here: %(reason)s",
                                                reason=error.detail)}, status=415) from None
            raise
        created["created"] = answer.created
        return f"/cooperations/{cooperation_id}#documents"

    try:
        response = await perform(request, who, "document", values, act, who._("Document uploaded."), again)
    finally:
        received.discard()  # stored or refused, the staged file goes (a repeated post never stored it)
    if created.get("created") is False:
        return redirect(response.headers["location"], who,
                        who._("This file is the same as the latest version; no version was added."))
    return response


@router.post("/cooperations/{cooperation_id}/agreements/{agreement_id}/seal")
async def seal(request: Request, cooperation_id: str, agreement_id: str) -> Response:
    """Seal the signed original of an agreement that was signed before its scan was uploaded."""
    who = await viewer(request)
    values = await read_form(request, who)
    services = services_of(request)

    async def act(request_id: str) -> str:
        number = text(values, "signed_original_version")
        body = SealIn(signed_original_version=number)
        await api.seal(cooperation_id, agreement_id, services, who.actor, request_id, body)
        return f"/cooperations/{cooperation_id}#documents"

    return await perform(request, who, f"seal-{agreement_id}", values, act,
                         who._("The signed original is sealed into the record."),
                         again_on(request, who, cooperation_id))


@router.get("/cooperations/{cooperation_id}/documents/{document_id}/versions/{number}/verify")
async def verify_page(request: Request, cooperation_id: str, document_id: str,
                      number: Annotated[int, PathParam(ge=1)]) -> Response:
    """The version's bytes in the store against its recorded SHA-256 and every place that sealed it."""
    who = await viewer(request)
    services = services_of(request)
    result = await api.verify(cooperation_id, document_id, number, request, services, who.actor)
    cooperation = await view.load(services, who, cooperation_id)
    document = _document(cooperation, document_id)
    places = {s.place: _place(s, cooperation, who) for s in result.sealed_in_record}
    return await render(request, who, "document_verify.html", c=cooperation, d=document, r=result, places=places,
                        **_version_links(cooperation_id, document_id, number))


@router.get("/cooperations/{cooperation_id}/documents/{document_id}/compare")
async def compare_page(request: Request, cooperation_id: str, document_id: str,
                       from_version: Annotated[int, Query(alias="from", ge=1)],
                       to_version: Annotated[int, Query(alias="to", ge=1)]) -> Response:
    """What changed in the text between two versions; a version without text (a scan) says so."""
    who = await viewer(request)
    services = services_of(request)
    cooperation = await view.load(services, who, cooperation_id)  # 404 for another department's
    document = _document(cooperation, document_id)
    result, problem, status_code = None, None, 200
    try:
        result = await api.compare_versions(cooperation_id, document_id, request, services, who.actor,
                                            from_version=from_version, to_version=to_version)
    except ApiError as error:
        if error.status not in (410, 422):
            raise
        detail = error.detail
        reason = detail[0].get("msg", "") if isinstance(detail, list) and detail else str(detail)
        problem, status_code = who._("These versions cannot be compared: %(reason)s", reason=reason), error.status
    return await render(request, who, "document_compare.html", status_code, c=cooperation, d=document,
                        r=result, problem=problem, from_version=from_version, to_version=to_version,
                        paired=_paired)


def _document(cooperation: dict[str, Any], document_id: str) -> dict[str, Any]:
    found = next((d for d in cooperation["documents"] if d["id"] == document_id), None)
    if found is None:
        from api.errors import not_found

        raise not_found(f"document {document_id}")
    return found


def _place(check: Any, cooperation: dict[str, Any], who: Viewer) -> str:
    """A sealed place of the record (api.routes.documents.SealedCheck) in the user's words."""
    if check.kind == "signature":
        names = {p["organization_id"]: p["organization_name"] for a in cooperation["agreements"] for p in a["parties"]}
        return who._("signature of %(party)s", party=names.get(check.organization_id, check.organization_id))
    if check.kind == "review_step":
        return who._("review step %(step)s of %(title)s", step=labeller(who._)("step", check.step),
                     title=check.agreement_title)
    return who._("signed original of %(title)s", title=check.agreement_title)


def _version_links(cooperation_id: str, document_id: str, number: int) -> dict[str, str]:
    content = f"/api/v1/cooperations/{cooperation_id}/documents/{document_id}/versions/{number}/content"
    return {"download_url": content, "view_url": content + "?disposition=inline"}


def _paired(block: Any) -> list[tuple[Any, ...]]:
    """The rows of an edited block: (old, new, segments) for each paired paragraph, then the
    paragraphs only one side has (old or new None)."""
    pairs = len(block.segments)
    rows: list[tuple[Any, ...]] = [(block.old[k], block.new[k], block.segments[k]) for k in range(pairs)]
    rows += [(old, None, None) for old in block.old[pairs:]]
    rows += [(None, new, None) for new in block.new[pairs:]]
    return rows

