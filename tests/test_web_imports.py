"""The import pages: upload → preview with errors by row and column (in Chinese) → confirm → links."""

from __future__ import annotations

import re

from imports.validate import REASONS
from tests.conftest import API_DEPARTMENT
from tests.import_support import good_row, import_world, xlsx
from tests.web_support import BASE, hidden
from tests.web_support import signed_in
from web.i18n import catalog

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def post_file(me, page, data: bytes, name: str = "清单.xlsx"):
    return await me.http.post("/imports", data={"csrf_token": hidden(page.text, "csrf_token"),
                                                "form_key": hidden(page.text, "form_key")},
                              files={"file": (name, data, XLSX)}, headers={"Origin": BASE})


async def test_upload_preview_errors_then_confirm_the_valid_rows(app, pool, api):
    w = await import_world(api.http)
    title = f"电池项目 Battery {w.suffix}"
    data = xlsx([good_row(w, title), good_row(w, f"Bad {w.suffix}", amount=-3)])
    async with signed_in(app, pool, ["liaison_officer"], API_DEPARTMENT) as me:
        page = await me.get("/imports")
        assert page.status_code == 200
        assert 'enctype="multipart/form-data"' in page.text and "协议投资额（万元）" in page.text
        assert 'href="/imports" aria-current="page"' in page.text

        sent = await post_file(me, page, data)
        assert sent.status_code == 303
        location = sent.headers["location"]
        assert re.fullmatch(r"/imports/[0-9a-f]{32}", location)
        preview = await me.get(location)
        assert preview.status_code == 200
        error_row = '<td class="num">3</td><td>协议投资额（万元）</td><td>为负数：金额须为零或正数</td>'
        assert error_row in preview.text
        assert title in preview.text

        refused = await me.submit(preview, f"{location}/confirm", {})
        assert refused.status_code == 409
        assert "当前无法进行此操作" in refused.text
        done = await me.submit(refused, f"{location}/confirm", {"skip_invalid": "1"})
        assert done.status_code == 303
        result = await me.get(done.headers["location"])
        assert "导入完成：新建 1 项" in result.text
        project_id = await pool.fetchval(
            "SELECT p.id FROM projects p JOIN cooperations c ON c.id = p.cooperation_id "
            "WHERE c.partner_organization_id = $1", w.company_id)
        assert f'href="/projects/{project_id}"' in result.text
        assert "已跳过（有错误）" in result.text

        again = await post_file(me, await me.get("/imports"), data, "清单（副本）.xlsx")
        second = await me.get(again.headers["location"])
        assert "同一文件此前已导入" in second.text
        assert "系统中已存在" in second.text
        assert 'style="' not in second.text and "<script>" not in second.text


async def test_an_unreadable_file_and_someone_elses_import(app, pool, api):
    w = await import_world(api.http)
    async with signed_in(app, pool, ["liaison_officer"], API_DEPARTMENT, language="en") as me:
        page = await me.get("/imports")
        bad = await post_file(me, page, b"PK\x03\x04 broken", "list.xlsx")
        assert bad.status_code == 422
        assert "This file cannot be read" in bad.text
        sent = await post_file(me, bad, xlsx([good_row(w)]))
        location = sent.headers["location"]
    async with signed_in(app, pool, ["liaison_officer"], API_DEPARTMENT) as colleague:
        assert (await colleague.get(location)).status_code == 404
    async with signed_in(app, pool, ["reviewer"], API_DEPARTMENT, language="en") as reviewer:
        page = await reviewer.get("/imports")
        assert 'href="/imports"' not in page.text.split("<main", 1)[0]
        refused = await post_file(reviewer, page, xlsx([good_row(w)]))
        assert refused.status_code == 403


def test_every_validation_reason_has_a_chinese_translation_with_its_placeholders():
    zh = catalog("zh")
    for reason in REASONS:
        assert reason in zh and zh[reason].string, reason
        assert sorted(re.findall(r"%\((\w+)\)s", zh[reason].string)) == sorted(re.findall(r"%\((\w+)\)s", reason))
