"""Agreement documents in a real browser: a liaison officer uploads two draft versions through
the cooperation page's form (a real file chooser), a file of the wrong type is refused next to
the field, and the comparison of the two versions marks what changed, checked with axe.
(The same over plain HTTP: tests/test_web_documents.py.)"""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.browser.conftest import Staff
from tests.document_files import docx, png
from tests.test_api_support import framework_body, open_cooperation

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def field(page: Page, label: str):
    return page.get_by_label(re.compile(rf"^{re.escape(label)}( \*)?$"))


async def upload(me: Staff, name: str, content: bytes, mime: str, kind: str = "draft") -> None:
    """Open the upload form, choose the file, say what it is, send it: as a person does."""
    page = me.page
    await page.get_by_text(me._("Upload a document or a new version")).click()
    # The file chooser (its label, "文件", is also the section's name: found by its type).
    await page.locator("input[type=file]").set_input_files(files=[{"name": name, "mimeType": mime, "buffer": content}])
    await field(page, me._("What it is")).select_option(value=kind)
    await page.get_by_role("button", name=me._("Upload")).click()


async def test_two_drafts_uploaded_compared_and_a_wrong_file_refused(api, sign_in, axe_check):
    coop = await open_cooperation(api.http)
    await coop.draft(framework_body(coop.w))
    me = await sign_in()
    page = me.page
    await page.goto(coop.path)

    await upload(me, "框架协议草稿.docx", docx(["第一条 合作内容", "第二条 投资额 10亿元"]), DOCX_TYPE)
    await expect(page).to_have_url(re.compile(r"#documents$"))
    await expect(page.get_by_role("status")).to_contain_text(me._("Document uploaded."))
    await upload(me, "框架协议草稿.docx", docx(["第一条 合作内容", "第二条 投资额 12亿元"]), DOCX_TYPE)
    await expect(page.get_by_role("status")).to_contain_text(me._("Document uploaded."))
    await expect(page.get_by_text("框架协议草稿.docx").first).to_be_visible()

    # An image is no draft: refused next to the file field, and nothing is added.
    await upload(me, "扫描件.png", png(), "image/png")
    await expect(page.get_by_role("alert")).to_contain_text("PNG")
    (document,) = (await api.http.get(f"{coop.path}/documents")).json()
    assert [v["version"] for v in document["versions"]] == [1, 2], "the refused file added a version"

    await page.goto(coop.path + "#documents")
    await field(page, me._("Compare version")).select_option(value="1")
    await field(page, me._("with version")).select_option(value="2")
    await page.get_by_role("button", name=me._("Compare")).click()
    await expect(page.locator("del").filter(has_text="0")).to_have_count(1)
    await expect(page.locator("ins").filter(has_text="2")).to_have_count(1)
    await axe_check(page)
