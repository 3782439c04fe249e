"""Agreement documents over the HTTP API: versions, downloads byte for byte, sealing at signing,
verify against the store, type and size limits, access, and comparing two drafts.

Real parts throughout: the session app on PostgreSQL and Temporal, the local document store
in a temporary directory (tests/conftest.py `document_dir`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest

from documents.storage import LocalStore, Stager
from tests.conftest import API_DEPARTMENT, user_client
from workflows.cooperation import CooperationWorkflow
from tests.document_files import docx, pdf, png
from tests.test_api_support import (FRAMEWORK_SIGNED_ON, Coop, framework_body, ok, open_cooperation, raw,  # noqa: F401
                                    world)

SIGNED_NAME = "战略合作框架协议（签字版）.pdf"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


async def upload(http: httpx.AsyncClient, coop: Coop, content: bytes, file_name: str, status: int = 201,
                 **fields: Any) -> Any:
    data = {k: str(v) for k, v in fields.items()}
    response = await http.post(f"{coop.path}/documents", data=data, files={"file": (file_name, content)})
    return ok(response, status)


async def drafted(api: httpx.AsyncClient) -> tuple[Coop, str]:
    coop = await open_cooperation(api)
    return coop, await coop.draft(framework_body(coop.w))


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def test_draft_versions_download_byte_for_byte(api, pool: asyncpg.Pool) -> None:
    coop, agreement = await drafted(api.http)
    v1, v2 = docx(["第一条 合作内容", "第二条 投资额 10亿元"]), docx(["第一条 合作内容", "第二条 投资额 12亿元"])
    first = await upload(api.http, coop, v1, "框架协议草稿.docx", kind="draft", agreement_id=agreement, note="初稿")
    second = await upload(api.http, coop, v2, "框架协议草稿.docx", kind="draft", agreement_id=agreement,
                          note="企业修改稿")
    assert first["document"]["id"] == second["document"]["id"], "an agreement has one draft document"
    assert [v["version"] for v in second["document"]["versions"]] == [1, 2]
    assert second["version"]["sha256"] == sha(v2) and second["version"]["size_bytes"] == len(v2)
    assert second["version"]["content_type"] == DOCX_TYPE
    assert second["version"]["uploader_name"] == "Liaison Officer Test"

    # The same bytes again (a double click, a retry): that version, not a new one.
    again = await upload(api.http, coop, v2, "框架协议草稿.docx", 200, kind="draft", agreement_id=agreement)
    assert again["created"] is False and again["version"]["version"] == 2

    doc = first["document"]["id"]
    response = await api.http.get(f"{coop.path}/documents/{doc}/versions/1/content")
    assert response.status_code == 200 and response.content == v1
    assert response.headers["content-type"] == DOCX_TYPE
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"______.docx\"; filename*=UTF-8''" + quote("框架协议草稿.docx", safe=""))
    assert response.headers["etag"] == f'"{sha(v1)}"'
    view = await api.http.get(f"{coop.path}/documents/{doc}/versions/2/content", params={"disposition": "inline"})
    assert view.content == v2 and view.headers["content-disposition"].startswith("inline;")

    actions = [r["action"] for r in await pool.fetch(
        "SELECT action FROM audit_events WHERE cooperation_id = $1 AND entity_type = 'document_version' ORDER BY seq",
        coop.id)]
    assert actions == ["document.uploaded", "document.uploaded", "document.downloaded", "document.viewed"]


async def test_versions_are_append_only_in_the_database(api, pool: asyncpg.Pool) -> None:
    coop, agreement = await drafted(api.http)
    answer = await upload(api.http, coop, docx(["甲"]), "a.docx", kind="draft", agreement_id=agreement)
    doc = answer["document"]["id"]
    for statement in ("UPDATE document_versions SET sha256 = sha256 WHERE document_id = $1",
                      "DELETE FROM document_versions WHERE document_id = $1"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await pool.execute(statement, doc)


async def test_review_steps_record_the_draft_version_they_approved(api) -> None:
    coop, agreement = await drafted(api.http)
    await upload(api.http, coop, docx(["初稿"]), "草稿.docx", kind="draft", agreement_id=agreement)
    latest = await upload(api.http, coop, docx(["修改稿"]), "草稿.docx", kind="draft", agreement_id=agreement)
    await coop.approve_all(agreement)
    (state,) = [a for a in coop.state["agreements"] if a["agreement_id"] == agreement]
    for step in state["review_steps"]:
        assert step["document"]["version"] == 2 and step["document"]["sha256"] == latest["version"]["sha256"]
    assert all(d["document"]["version"] == 2 for d in state["review_log"])


async def test_signing_seals_the_signed_original_in_workflow_read_model_and_audit(api, app, pool) -> None:
    coop, agreement = await drafted(api.http)
    await coop.approve_all(agreement)
    scan = pdf(["Strategic cooperation framework agreement", "signed and sealed"])
    up = await upload(api.http, coop, scan, SIGNED_NAME, kind="signed_original", agreement_id=agreement)
    assert up["version"]["file_name"] == SIGNED_NAME
    await coop.sign(agreement, coop.w.gov_id, FRAMEWORK_SIGNED_ON)
    state = await coop.sign(agreement, coop.w.company_id, FRAMEWORK_SIGNED_ON)

    (signed,) = [a for a in state["agreements"] if a["agreement_id"] == agreement]
    assert signed["status"] == "signed" and signed["signed_document"]["sha256"] == sha(scan)
    # The workflow's own state, queried from Temporal.
    handle = app.state.services.client.get_workflow_handle(f"cooperation-{coop.id}")
    queried = await handle.query(CooperationWorkflow.state)
    (in_workflow,) = [a for a in queried.agreements if a.agreement_id == agreement]
    assert in_workflow.signed_document.sha256 == sha(scan)
    # The read model, and the hash-chained audit event of the signing.
    read = await pool.fetchval("SELECT signed_document->>'sha256' FROM agreements WHERE cooperation_id = $1 AND id = $2",
                               coop.id, agreement)
    audited = await pool.fetchval(
        "SELECT after->'signed_document'->>'sha256' FROM audit_events WHERE cooperation_id = $1 "
        "AND action = 'agreement.signed' AND entity_id = $2", coop.id, agreement)
    assert read == audited == sha(scan)

    doc = up["document"]["id"]
    verdict = ok(await api.http.get(f"{coop.path}/documents/{doc}/versions/1/verify"))
    assert verdict["status"] == "intact" and verdict["stored_sha256"] == sha(scan)
    assert {s["place"].split(" of ")[0] for s in verdict["sealed_in_record"]} == {"signed original", "signature"}
    assert all(s["matches"] for s in verdict["sealed_in_record"] + verdict["sealed_in_audit"])
    assert [s["action"] for s in verdict["sealed_in_audit"]] == ["agreement.signed"]

    # A sealed original is not replaced by a later upload.
    refused = await api.http.post(f"{coop.path}/documents", data={"kind": "signed_original", "agreement_id": agreement},
                                  files={"file": ("rescan.pdf", pdf(["another scan"]))})
    assert refused.status_code == 409 and "sealed" in refused.json()["detail"]


async def test_tampered_or_lost_file_is_detected(api, app, document_dir: Path) -> None:
    coop, agreement = await drafted(api.http)
    await coop.approve_all(agreement)
    scan = png()
    up = await upload(api.http, coop, scan, "签字页.png", kind="signed_original", agreement_id=agreement)
    await coop.sign(agreement, coop.w.gov_id, FRAMEWORK_SIGNED_ON)
    await coop.sign(agreement, coop.w.company_id, FRAMEWORK_SIGNED_ON)
    doc = up["document"]["id"]
    stored = app.state.services.documents.path_of(sha(scan))
    assert stored.read_bytes() == scan and stored.is_relative_to(document_dir)

    stored.chmod(0o644)
    stored.write_bytes(scan + b"one byte more")  # someone edited the file on the server
    verdict = ok(await api.http.get(f"{coop.path}/documents/{doc}/versions/1/verify"))
    assert verdict["status"] == "altered" and verdict["stored_sha256"] == sha(scan + b"one byte more")
    assert verdict["sealed_in_audit"] and not any(s["matches"] for s in verdict["sealed_in_audit"])

    stored.unlink()  # or lost it
    verdict = ok(await api.http.get(f"{coop.path}/documents/{doc}/versions/1/verify"))
    assert verdict["status"] == "missing" and verdict["stored_sha256"] is None
    gone = await api.http.get(f"{coop.path}/documents/{doc}/versions/1/content")
    assert gone.status_code == 410 and "missing" in gone.json()["detail"]


async def test_seal_after_signing_when_the_scan_comes_later(api) -> None:
    coop, agreement = await drafted(api.http)
    await coop.approve_all(agreement)
    await coop.sign(agreement, coop.w.gov_id, FRAMEWORK_SIGNED_ON)
    state = await coop.sign(agreement, coop.w.company_id, FRAMEWORK_SIGNED_ON)
    assert next(a for a in state["agreements"] if a["agreement_id"] == agreement)["signed_document"] is None
    no_scan = await api.http.post(f"{coop.path}/agreements/{agreement}/seal")
    assert no_scan.status_code == 409 and "upload the scan" in no_scan.json()["detail"]

    scan = pdf(["scan received by post"])
    await upload(api.http, coop, scan, SIGNED_NAME, kind="signed_original", agreement_id=agreement)
    state = ok(await api.http.post(f"{coop.path}/agreements/{agreement}/seal"))
    assert next(a for a in state["agreements"] if a["agreement_id"] == agreement)["signed_document"]["sha256"] == sha(scan)
    twice = await api.http.post(f"{coop.path}/agreements/{agreement}/seal")
    assert twice.status_code == 409 and "already sealed" in twice.json()["detail"]


async def test_type_is_checked_by_content(api) -> None:
    coop, agreement = await drafted(api.http)
    cases = [
        (b"MZ\x90\x00 an executable", "草稿.pdf", "draft", "is not a DOCX, PDF file"),
        (png(), "scan.png", "draft", "a draft document takes DOCX, PDF"),
        (pdf(["x"]), "草稿.docx", "draft", "named .docx but its content is PDF"),
        (b"PK\x03\x04 not really a zip", "草稿.docx", "draft", "is not a DOCX, PDF file"),
    ]
    for content, name, kind, message in cases:
        response = await api.http.post(f"{coop.path}/documents", data={"kind": kind, "agreement_id": agreement},
                                       files={"file": (name, content, "application/pdf")})
        assert response.status_code == 415, (name, response.text)
        assert message in response.json()["detail"]
    listed = ok(await api.http.get(f"{coop.path}/documents"))
    assert listed == [], "a refused upload leaves no document behind"


async def test_size_limit_refuses_with_413_and_keeps_nothing(api, app, document_dir: Path) -> None:
    coop, agreement = await drafted(api.http)
    services = app.state.services
    limit, services.document_max_bytes = services.document_max_bytes, 100_000
    staged_before = set((document_dir / "tmp").glob("*"))
    try:
        big = pdf(["x"]) + b"0" * 150_000
        response = await api.http.post(f"{coop.path}/documents", data={"kind": "draft", "agreement_id": agreement},
                                       files={"file": ("big.pdf", big)})
        assert response.status_code == 413 and "100000 bytes" in response.json()["detail"]

        async def chunked():  # no Content-Length: refused while it streams in
            yield b"--b\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\ndraft\r\n"
            yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pdf\"\r\n\r\n"
            for _ in range(20):
                yield b"%PDF-1.4" + b"0" * 10_000
            yield b"\r\n--b--\r\n"

        streamed = await api.http.post(f"{coop.path}/documents", content=chunked(),
                                       headers={"content-type": "multipart/form-data; boundary=b"})
        assert streamed.status_code == 413
        within = await upload(api.http, coop, pdf(["small"]), "small.pdf", kind="draft", agreement_id=agreement)
        assert within["version"]["version"] == 1
    finally:
        services.document_max_bytes = limit
    assert set((document_dir / "tmp").glob("*")) == staged_before, "no staged file is left behind"


async def test_bad_form_fields_are_field_errors(api) -> None:
    coop, agreement = await drafted(api.http)
    cases = [
        ({"agreement_id": agreement}, ["body", "kind"]),
        ({"kind": "contract"}, ["body", "kind"]),
        ({"kind": "draft"}, ["body", "agreement_id"]),
        ({"kind": "draft", "agreement_id": "no-such-agreement"}, ["body", "agreement_id"]),
        ({"kind": "material", "agreement_id": agreement}, ["body", "agreement_id"]),
        ({"kind": "material", "negotiation_event_id": "nope"}, ["body", "negotiation_event_id"]),
        ({"kind": "review_comments", "agreement_id": agreement, "comments_on": "3"}, ["body", "comments_on"]),
        ({"kind": "draft", "agreement_id": agreement, "surprise": "x"}, ["body", "surprise"]),
    ]
    for fields, loc in cases:
        response = await api.http.post(f"{coop.path}/documents", data=fields, files={"file": ("a.pdf", pdf(["a"]))})
        assert response.status_code == 422, (fields, response.text)
        assert response.json()["detail"][0]["loc"] == loc, (fields, response.text)
    no_file = await api.http.post(f"{coop.path}/documents", files={"kind": (None, "material")})
    assert no_file.status_code == 422 and no_file.json()["detail"][0]["loc"] == ["body", "file"]
    elsewhere = await api.http.post(f"{coop.path}/documents", data={"kind": "material"},
                                    files={"attachment": ("x.pdf", pdf(["x"]))})
    assert elsewhere.status_code == 422 and elsewhere.json()["detail"][0]["loc"] == ["body", "attachment"]
    not_multipart = await api.http.post(f"{coop.path}/documents", json={"kind": "material"})
    assert not_multipart.status_code == 422


async def test_negotiation_material_and_review_comments(api) -> None:
    coop, agreement = await drafted(api.http)
    state = await coop.post("/negotiation-events", {"kind": "inspection_visit", "occurred_on": "2017-12-01",
                                                    "place": "广州", "summary": "市长率队考察"})
    event = state["negotiation"][-1]["event_id"]
    material = await upload(api.http, coop, pdf(["visit report"]), "考察报告.pdf", kind="material",
                            negotiation_event_id=event, title="广州考察报告")
    assert material["document"]["negotiation_event_id"] == event and material["document"]["title"] == "广州考察报告"
    await upload(api.http, coop, docx(["初稿"]), "草稿.docx", kind="draft", agreement_id=agreement)
    comments = await upload(REVIEW_DESK_REVIEWER(), coop, docx(["第二条需明确投资额"]), "法审意见.docx",
                            kind="review_comments", agreement_id=agreement, comments_on=1)
    assert comments["version"]["comments_on"] == 1 and comments["version"]["uploader_name"] == "Counsel Test"
    # A reviewer comments but does not write the draft.
    refused = await REVIEW_DESK_REVIEWER().post(f"{coop.path}/documents",
                                                data={"kind": "draft", "agreement_id": agreement},
                                                files={"file": ("x.docx", docx(["x"]))})
    assert refused.status_code == 403


def REVIEW_DESK_REVIEWER() -> httpx.AsyncClient:  # noqa: N802 - reads like the desk it names
    from tests.test_api_support import REVIEW_DESK

    return REVIEW_DESK["legal_review"]


async def test_other_departments_see_nothing(app, api, pool) -> None:
    coop, agreement = await drafted(api.http)
    up = await upload(api.http, coop, docx(["机密草稿"]), "草稿.docx", kind="draft", agreement_id=agreement)
    doc = up["document"]["id"]
    async with user_client(app, pool, ["liaison_officer"], "Another Bureau 其他局") as other:
        for path in (f"{coop.path}/documents", f"{coop.path}/documents/{doc}",
                     f"{coop.path}/documents/{doc}/versions/1/content", f"{coop.path}/documents/{doc}/versions/1/verify",
                     f"{coop.path}/documents/{doc}/compare?from=1&to=1"):
            assert (await other.http.get(path)).status_code == 404, path
        posted = await other.http.post(f"{coop.path}/documents", data={"kind": "draft", "agreement_id": agreement},
                                       files={"file": ("x.docx", docx(["x"]))})
        assert posted.status_code == 404
    async with user_client(app, pool, ["auditor"], None) as auditor:
        assert (await auditor.http.get(f"{coop.path}/documents/{doc}/versions/1/content")).status_code == 200
        posted = await auditor.http.post(f"{coop.path}/documents", data={"kind": "material"},
                                         files={"file": ("x.pdf", pdf(["x"]))})
        assert posted.status_code == 403
    async with user_client(app, pool, ["liaison_officer"], API_DEPARTMENT) as colleague:
        assert (await colleague.http.get(f"{coop.path}/documents/{doc}/versions/1/content")).status_code == 200


async def test_compare_two_drafts(api) -> None:
    coop, agreement = await drafted(api.http)
    clauses = [f"第{i}条 条款内容{i}" for i in range(1, 21)]
    changed = clauses[:4] + ["第5条 投资总额不低于12亿元"] + clauses[5:19] + ["第21条 新增：设立知识产权研究院"]
    v1 = await upload(api.http, coop, docx(clauses), "草稿.docx", kind="draft", agreement_id=agreement)
    await upload(api.http, coop, docx(changed), "草稿.docx", kind="draft", agreement_id=agreement)
    doc = v1["document"]["id"]
    result = ok(await api.http.get(f"{coop.path}/documents/{doc}/compare", params={"from": 1, "to": 2}))
    assert (result["added"], result["removed"], result["edited"]) == (0, 0, 2)
    edits = [b for b in result["blocks"] if b["op"] == "replace"]
    assert edits[0]["old"] == ["第5条 条款内容5"] and edits[0]["new"] == ["第5条 投资总额不低于12亿元"]
    assert {"op": "insert", "text": "投资总额不低于12亿元"} in edits[0]["segments"][0]
    assert edits[1]["old"] == ["第20条 条款内容20"] and edits[1]["new"] == ["第21条 新增：设立知识产权研究院"]
    assert any(b["op"] == "skipped" for b in result["blocks"]), "long unchanged runs are summarised"

    pdfs = await upload(api.http, coop, pdf(["Article 1 scope", "Article 2 amount 1 billion"]), "v.pdf",
                        kind="material")
    pdoc = pdfs["document"]["id"]
    ok(await api.http.post(f"{coop.path}/documents/{pdoc}/versions",
                           files={"file": ("v.pdf", pdf(["Article 1 scope", "Article 2 amount 1.2 billion"]))}), 201)
    result = ok(await api.http.get(f"{coop.path}/documents/{pdoc}/compare", params={"from": 1, "to": 2}))
    assert result["edited"] == 1 and result["unchanged"] == 1

    scan = await upload(api.http, coop, png(), "scan.png", kind="material")
    refused = await api.http.get(f"{coop.path}/documents/{scan['document']['id']}/compare", params={"from": 1, "to": 1})
    assert refused.status_code == 422 and "no text" in refused.json()["detail"][0]["msg"]
    missing = await api.http.get(f"{coop.path}/documents/{doc}/compare", params={"from": 1, "to": 9})
    assert missing.status_code == 404


async def test_terminated_cooperation_takes_no_documents(api) -> None:
    coop, agreement = await drafted(api.http)
    await coop.post("/terminate", {"reason": "企业战略调整"})
    response = await api.http.post(f"{coop.path}/documents", data={"kind": "material"},
                                   files={"file": ("x.pdf", pdf(["x"]))})
    assert response.status_code == 409 and "terminated" in response.json()["detail"]


async def test_storing_a_blob_is_a_rename_of_the_staged_file(tmp_path: Path) -> None:
    """The local store keeps the staged file itself (same inode, read-only): a reader never sees
    half a file, and the bytes are written once. The same bytes again: kept once, staging cleared."""
    store = LocalStore(tmp_path / "store")
    stager = Stager(store.staging, 10_000)
    assert stager.write(b"%PDF-1.4 signed")
    staged = stager.finish()
    inode = os.stat(staged.path).st_ino
    await store.put(staged, "application/pdf")
    stored = store.path_of(staged.sha256)
    assert os.stat(stored).st_ino == inode and not staged.path.exists()
    assert stored.read_bytes() == b"%PDF-1.4 signed" and stored.stat().st_mode & 0o777 == 0o444
    again = Stager(store.staging, 10_000)
    again.write(b"%PDF-1.4 signed")
    await store.put(again.finish(), "application/pdf")
    assert list(store.staging.iterdir()) == [] and b"".join([c async for c in store.read(staged.sha256)]) == \
        b"%PDF-1.4 signed"
