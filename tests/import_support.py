"""Helpers for the import tests: project-list files built in the test, as staff would send them."""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl import Workbook

from tests.conftest import API_DEPARTMENT, new_id
from tests.test_api_support import World, create_org, world

HEADERS = ["合作企业", "牵头单位", "项目名称", "协议投资额（万元）", "签约日期", "框架协议签约日期", "责任部门",
           "责任人", "项目地点"]


def xlsx(rows: list[list[Any]], headers: list[str] = HEADERS) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_text(rows: list[list[Any]], headers: list[str] = HEADERS) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue()


def good_row(w: World, title: str | None = None, amount: Any = 1250.5) -> list[Any]:
    """A row that imports: the world's company and government, signed in 2024."""
    return [w.company["name"], w.government["name"], title or f"新能源电池项目 Battery plant {new_id()}", amount,
            "2024-06-15", "2024-03-01", API_DEPARTMENT, "王强 Wang Qiang", "高新区 High-tech zone"]


async def import_world(http) -> World:
    """Organizations with fresh names (the registry is shared by the whole test session)."""
    w = await world(http)
    await create_org(http, f"另一家企业 Other Co. {w.suffix}", "company")
    return w
