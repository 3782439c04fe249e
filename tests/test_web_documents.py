"""Agreement documents through the pages, as staff use them: upload drafts and the signed
original through the cooperation page's multipart form, see the versions listed with their
fingerprints, compare two drafts, verify the sealed original, sign and decide review steps on
a named version; and what the pages owe: a refused file said next to the form and nothing
kept, a forged post refused with nothing staged, another department's documents unreachable.

Real parts: the session app on PostgreSQL and Temporal, the local document store in a
temporary directory (tests/conftest.py `document_dir`)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tests.conftest import API_DEPARTMENT, LEGAL_DEPARTMENT  # noqa: F401
from tests.document_files import docx, pdf, png
from tests.test_api_support import world
from tests.test_web_cooperation import agreement_ids, desks, follow, open_cooperation  # noqa: F401
from tests.web_support import BASE, PageClient, hidden, hidden_fields, signed_in

SIGNED_NAME = "战略合作框架协议（签字版）.pdf"


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def upload(me: PageClient, page, cooperation_id: str, content: bytes, file_name: str,
                 content_type: str = "application/octet-stream", csrf: bool = True, **fields: str):
    """Post the page's upload form as a browser does: multipart, its hidden fields and the file."""
    action = f"/cooperations/{cooperation_id}/documents"
    text = page if isinstance(page, str) else page.text
    assert 'enctype="multipart/form-data"' in text[text.find(f'action="{action}"') - 200:]
    data = {**hidden_fields(text, action), **fields}
    data["csrf_token"] = hidden(text, "csrf_token") if csrf else ""
    if not csrf:
        data.pop("csrf_token")
    return await me.http.post(action, data=data, files={"file": (file_name, content, content_type)},
                              headers={"Origin": BASE})


async def drafted(officer: PageClient, api, pool) -> tuple[str, str, object]:
    w = await world(api.http)
    cooperation_id = await open_cooperation(officer, w, "文件页面测试合作")
    page = await officer.get(f"/cooperations/{cooperation_id}")
    await follow(officer, await officer.submit(page, f"/cooperations/{cooperation_id}/agreements", {
        "kind": "framework", "title": "战略合作框架协议",
        "parties-0-organization_id": w.gov_id, "parties-0-signatory_name": "市长", "parties-0-signatory_title": "市长",
        "parties-1-organization_id": w.company_id, "parties-1-signatory_name": "董事长",
        "parties-1-signatory_title": "董事长"}))
    return cooperation_id, (await agreement_ids(pool, cooperation_id))["framework"], w


def staged(document_dir: Path) -> set[Path]:
    return set((document_dir / "tmp").glob("*"))


async def test_drafts_compare_review_sign_and_verify_through_the_pages(desks, api, pool, document_dir):
    officer, reviewer, leader = desks
    cooperation_id, agreement, w = await drafted(officer, api, pool)
    page = await officer.get(f"/cooperations/{cooperation_id}")
    assert 'id="documents"' in page.text and "尚未上传文件" in page.text

    v1 = docx(["第一条 合作内容", "第二条 投资额 10亿元", "第三条 争议解决"])
    answer = await upload(officer, page, cooperation_id, v1, "框架协议草稿.docx", kind="draft",
                          agreement_id=agreement, note="初稿")
    assert answer.status_code == 303 and answer.headers["location"] == f"/cooperations/{cooperation_id}#documents"
    page = await follow(officer, answer)
    assert "文件已上传" in page.text and "框架协议草稿.docx" in page.text and sha(v1)[:12] in page.text
    assert "初稿" in page.text

    v2 = docx(["第一条 合作内容", "第二条 投资额 12亿元", "第三条 争议解决", "第四条 生效"])
    page = await follow(officer, await upload(officer, page, cooperation_id, v2, "框架协议草稿.docx", kind="draft",
                                              agreement_id=agreement, note="企业修改稿"))
    async with pool.acquire() as conn:
        doc = await conn.fetchval("SELECT id FROM documents WHERE cooperation_id = $1 AND kind = 'draft'",
                                  cooperation_id)
    api_path = f"/api/v1/cooperations/{cooperation_id}/documents/{doc}/versions"
    assert f'href="{api_path}/2/content"' in page.text and f'href="{api_path}/2/content?disposition=inline"' in page.text
    # The download link works with the page's session cookie, byte for byte.
    downloaded = await officer.get(f"{api_path}/1/content")
    assert downloaded.status_code == 200 and downloaded.content == v1
    # The same file again adds nothing, and says so.
    again = await upload(officer, page, cooperation_id, v2, "框架协议草稿.docx", kind="draft", agreement_id=agreement)
    page = await follow(officer, again)
    assert "与最新版本相同" in page.text

    # Compare: the form on the documents section, then the page with <ins>/<del>.
    compare = f"/cooperations/{cooperation_id}/documents/{doc}/compare"
    assert f'action="{compare}"' in page.text
    shown = await officer.get(compare, params={"from": 1, "to": 2})
    assert shown.status_code == 200, shown.text[:2000]
    assert "<del>" in shown.text and "<ins>" in shown.text
    marked = re.sub(r'<span class="visually-hidden">[^<]*</span>', "", shown.text)
    assert "第二条 投资额 1<del>0</del><ins>2</ins>亿元" in marked  # the changed characters, inside the clause
    assert "第四条 生效" in shown.text and "1 段新增" in shown.text

    # The review form names the draft version decided on; the steps record it.
    await follow(officer, await officer.submit(page, f"/cooperations/{cooperation_id}/agreements/{agreement}/submit",
                                               {}))
    for desk, step in ((reviewer, "legal_review"), (leader, "leadership_approval")):
        page = await desk.get(f"/cooperations/{cooperation_id}")
        action = f"/cooperations/{cooperation_id}/agreements/{agreement}/review"
        assert hidden_fields(page.text, action).get("draft_version") == "2"
        await follow(desk, await desk.submit(page, action, {"step": step, "decision": "approve", "comment": "同意"}))
    async with pool.acquire() as conn:
        steps = await conn.fetchval("SELECT review_steps FROM agreements WHERE id = $1", agreement)
    assert [s["document"]["version"] for s in steps] == [2, 2]

    # The signed original: a PDF with a Chinese name; the sign form offers it; signing seals it.
    scan = pdf(["Strategic cooperation framework agreement", "signed and sealed"])
    page = await officer.get(f"/cooperations/{cooperation_id}")
    page = await follow(officer, await upload(officer, page, cooperation_id, scan, SIGNED_NAME, "application/pdf",
                                              kind="signed_original", agreement_id=agreement))
    assert SIGNED_NAME in page.text
    sign = f"/cooperations/{cooperation_id}/agreements/{agreement}/sign"
    assert 'name="signed_original_version"' in page.text
    for organization_id in (w.gov_id, w.company_id):
        page = await officer.get(f"/cooperations/{cooperation_id}")
        await follow(officer, await officer.submit(page, sign, {"organization_id": organization_id,
                                                                "signed_on": "2026-05-20",
                                                                "signed_original_version": "1"}))
    page = await officer.get(f"/cooperations/{cooperation_id}")
    assert "已封存" in page.text and sha(scan)[:12] in page.text
    async with pool.acquire() as conn:
        original = await conn.fetchval("SELECT id FROM documents WHERE cooperation_id = $1 AND kind = 'signed_original'",
                                       cooperation_id)
        sealed = await conn.fetchval("SELECT signed_document->>'sha256' FROM agreements WHERE id = $1", agreement)
    assert sealed == sha(scan)

    verify = f"/cooperations/{cooperation_id}/documents/{original}/versions/1/verify"
    assert f'href="{verify}"' in page.text
    shown = await officer.get(verify)
    assert shown.status_code == 200, shown.text[:2000]
    assert "完好" in shown.text and sha(scan) in shown.text and "agreement.signed" in shown.text
    assert "不一致" not in shown.text
    assert f"{w.government['name']} 的签署" in shown.text and "《战略合作框架协议》的签字原件" in shown.text  # the places, worded

    # Negotiation material (the agreement select left as it was is not sent for it); an image
    # has no text to compare: said on the page, not a 500.
    page = await follow(officer, await upload(officer, page, cooperation_id, png(), "考察照片.png", "image/png",
                                              kind="material", agreement_id=agreement, note="考察现场"))
    assert "考察照片.png" in page.text and "洽谈材料" in page.text
    async with pool.acquire() as conn:
        photo = await conn.fetchval("SELECT id FROM documents WHERE cooperation_id = $1 AND kind = 'material'",
                                    cooperation_id)
    refused = await officer.get(f"/cooperations/{cooperation_id}/documents/{photo}/compare",
                                params={"from": 1, "to": 1})
    assert refused.status_code == 422 and "无法比较" in refused.text


async def test_a_refused_file_is_said_on_the_page_and_nothing_is_kept(desks, api, pool, document_dir):
    officer, _, _ = desks
    cooperation_id, agreement, _w = await drafted(officer, api, pool)
    page = await officer.get(f"/cooperations/{cooperation_id}")
    before = staged(document_dir)
    answer = await upload(officer, page, cooperation_id, png(), "草稿.png", "image/png", kind="draft",
                          agreement_id=agreement, note="错误格式")
    assert answer.status_code == 415
    assert "不接受此类文件" in answer.text and 'value="错误格式"' in answer.text  # the note is kept
    assert 'class="error-summary"' in answer.text
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM documents WHERE cooperation_id = $1", cooperation_id) == 0
    assert staged(document_dir) == before


async def test_a_post_without_the_csrf_token_is_refused_and_stages_nothing(desks, api, pool, document_dir):
    officer, _, _ = desks
    cooperation_id, agreement, _w = await drafted(officer, api, pool)
    page = await officer.get(f"/cooperations/{cooperation_id}")
    before = staged(document_dir)
    answer = await upload(officer, page, cooperation_id, docx(["甲"]), "a.docx", csrf=False, kind="draft",
                          agreement_id=agreement)
    assert answer.status_code == 403
    assert staged(document_dir) == before
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM documents WHERE cooperation_id = $1", cooperation_id) == 0


async def test_another_departments_document_pages_are_not_found(desks, app, api, pool):
    officer, _, _ = desks
    cooperation_id, agreement, _w = await drafted(officer, api, pool)
    page = await officer.get(f"/cooperations/{cooperation_id}")
    await follow(officer, await upload(officer, page, cooperation_id, docx(["甲"]), "a.docx", kind="draft",
                                       agreement_id=agreement))
    async with pool.acquire() as conn:
        doc = await conn.fetchval("SELECT id FROM documents WHERE cooperation_id = $1", cooperation_id)
    async with signed_in(app, pool, ["liaison_officer"], "Another Bureau 其他局") as stranger:
        for path in (f"/cooperations/{cooperation_id}/documents/{doc}/versions/1/verify",
                     f"/cooperations/{cooperation_id}/documents/{doc}/compare?from=1&to=1",
                     f"/api/v1/cooperations/{cooperation_id}/documents/{doc}/versions/1/content"):
            shown = await stranger.get(path)
            assert shown.status_code == 404, path
            assert "a.docx" not in shown.text
        own = await stranger.get("/cooperations/new")  # a page of theirs, for its CSRF token
        answer = await stranger.http.post(f"/cooperations/{cooperation_id}/documents",
                                          data={"csrf_token": hidden(own.text, "csrf_token"), "kind": "draft",
                                                "agreement_id": agreement},
                                          files={"file": ("b.docx", docx(["乙"]))}, headers={"Origin": BASE})
        assert answer.status_code == 404


async def test_a_file_over_the_limit_is_said_next_to_the_field(desks, app, api, pool, document_dir):
    officer, _, _ = desks
    cooperation_id, agreement, _w = await drafted(officer, api, pool)
    page = await officer.get(f"/cooperations/{cooperation_id}")
    services = app.state.services
    limit, services.document_max_bytes = services.document_max_bytes, 100_000
    before = staged(document_dir)
    try:
        answer = await upload(officer, page, cooperation_id, pdf(["x"]) + b"0" * 150_000, "大文件.pdf",
                              "application/pdf", kind="draft", agreement_id=agreement)
    finally:
        services.document_max_bytes = limit
    assert answer.status_code == 413 and "文件超过了" in answer.text and 'id="e-file"' in answer.text
    assert staged(document_dir) == before


async def test_seal_a_signed_original_uploaded_after_the_signing(desks, api, pool):
    officer, reviewer, leader = desks
    cooperation_id, agreement, w = await drafted(officer, api, pool)
    page = await officer.get(f"/cooperations/{cooperation_id}")
    await follow(officer, await officer.submit(page, f"/cooperations/{cooperation_id}/agreements/{agreement}/submit",
                                               {}))
    for desk, step in ((reviewer, "legal_review"), (leader, "leadership_approval")):
        page = await desk.get(f"/cooperations/{cooperation_id}")
        action = f"/cooperations/{cooperation_id}/agreements/{agreement}/review"
        assert "draft_version" not in hidden_fields(page.text, action)  # no draft uploaded: none named
        await follow(desk, await desk.submit(page, action, {"step": step, "decision": "approve"}))
    for organization_id in (w.gov_id, w.company_id):
        page = await officer.get(f"/cooperations/{cooperation_id}")
        assert 'name="signed_original_version"' not in page.text
        await follow(officer, await officer.submit(page, f"/cooperations/{cooperation_id}/agreements/{agreement}/sign",
                                                   {"organization_id": organization_id, "signed_on": "2026-05-20"}))
    page = await officer.get(f"/cooperations/{cooperation_id}")
    seal = f"/cooperations/{cooperation_id}/agreements/{agreement}/seal"
    assert f'action="{seal}"' not in page.text  # nothing to seal yet
    scan = png()
    page = await follow(officer, await upload(officer, page, cooperation_id, scan, SIGNED_NAME.replace(".pdf", ".png"),
                                              "image/png", kind="signed_original", agreement_id=agreement))
    assert f'action="{seal}"' in page.text
    page = await follow(officer, await officer.submit(page, seal, {}))
    assert "签字原件已封存入档" in page.text and f'action="{seal}"' not in page.text and "已封存" in page.text
    async with pool.acquire() as conn:
        sealed = await conn.fetchval("SELECT signed_document->>'sha256' FROM agreements WHERE id = $1", agreement)
    assert sealed == sha(scan)
