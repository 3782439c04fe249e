"""Reading and checking a project list: .xlsx and CSV (UTF-8 with or without BOM, GB18030), and every
row-level error as (row as the spreadsheet numbers it, column header as the file wrote it, reason)."""

from __future__ import annotations

import time
from datetime import date, datetime

import pytest

from imports import validate as v
from imports.columns import match_headers
from imports.parse import Unreadable, read
from tests.conftest import API_DEPARTMENT, new_id
from tests.import_support import HEADERS, csv_text, good_row, import_world, xlsx

TODAY = date(2026, 1, 15)


async def check(pool, data: bytes, name: str = "list.xlsx", max_rows: int = 10_000) -> v.Preview:
    async with pool.acquire() as conn:
        return await v.validate(conn, read(data, name), TODAY, max_rows)


def triples(preview: v.Preview) -> list[tuple[int, str, str, dict]]:
    return [(e.row, e.column, e.reason, e.params) for e in preview.errors]


async def test_good_and_bad_rows_and_their_exact_errors(pool, api):
    w = await import_world(api.http)
    good = good_row(w, "电池项目 Battery A")
    rows = [
        good,                                                               # row 2
        good_row(w, "Row 3")[:4] + ["2024-13-45"] + good_row(w)[5:],         # row 3: no such date
        good_row(w, "Row 4", amount=-5),                                     # row 4: negative
        [f"无此企业 Unknown Co. {w.suffix}"] + good_row(w, "Row 5")[1:],      # row 5: unknown partner
        list(good),                                                          # row 6: duplicate of row 2
        good_row(w, "Row 7", amount="一千万")[:5] + ["2024-07-01"] + good[6:],  # row 7: text amount, dates reversed
        good_row(w, "Row 8")[:4] + ["2099-01-01"] + good[5:],                # row 8: in the future
        good_row(w, "Row 9")[:6] + [f"无此部门 No such office {w.suffix}"] + good[7:],  # row 9
        [None] * len(HEADERS),                                               # row 10: blank, skipped
        good_row(w, "Row 11")[:7] + [""] + good[8:],                         # row 11: no officer
        [w.company["name"], w.company["name"]] + good_row(w, "Row 12")[2:],   # row 12: a company leading
        good_row(w, "Row 13", amount="1,234.5678912"),                        # row 13: below a fen
    ]
    preview = await check(pool, xlsx(rows))
    assert triples(preview) == [
        (3, "签约日期", v.NOT_A_DATE, {}),
        (4, "协议投资额（万元）", v.NEGATIVE, {}),
        (5, "合作企业", v.UNKNOWN_ORGANIZATION, {}),
        (6, "项目名称", v.DUPLICATE, {"row": 2}),
        (7, "协议投资额（万元）", v.NOT_A_NUMBER, {}),
        (7, "签约日期", v.BEFORE_FRAMEWORK, {"date": "2024-07-01"}),
        (8, "签约日期", v.FUTURE, {}),
        (9, "责任部门", v.UNKNOWN_DEPARTMENT, {}),
        (11, "责任人", v.EMPTY, {}),
        (12, "牵头单位", v.NOT_A_GOVERNMENT_BODY, {}),
        (13, "协议投资额（万元）", v.TOO_PRECISE, {}),
    ]
    assert preview.errors[3].message == "the same partner and project title as row 2"
    assert [r["row"] for r in preview.rows] == [2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13]
    assert preview.counts() == {"rows": 11, "valid": 1, "invalid": 10, "existing": 0, "errors": 11}
    first = preview.rows[0]["values"]
    assert first["partner_id"] == w.company_id and first["lead_id"] == w.gov_id
    assert first["committed"] == "12505000.00"  # 1,250.5 万元, exactly, in yuan
    assert first["signed_on"] == "2024-06-15" and first["framework_signed_on"] == "2024-03-01"
    assert first["cooperation_title"] == "电池项目 Battery A"


async def test_english_headers_dates_as_excel_dates_and_text(pool, api):
    w = await import_world(api.http)
    headers = ["Partner", "LEAD PARTY", "project title", "Committed investment (万元)", "Signed on",
               "Responsible department", "Responsible officer"]
    rows = [[w.company["name"].upper(), w.government["name"], f"P {new_id()}", 10, datetime(2024, 6, 15),
             API_DEPARTMENT, "Li"],
            [w.company["name"], w.government["name"], f"Q {new_id()}", "1，000", "2024年6月15日", API_DEPARTMENT,
             "Li"]]
    preview = await check(pool, xlsx(rows, headers))
    assert triples(preview) == []
    assert [r["values"]["signed_on"] for r in preview.rows] == ["2024-06-15", "2024-06-15"]
    assert [r["values"]["framework_signed_on"] for r in preview.rows] == ["2024-06-15", "2024-06-15"]
    assert [r["values"]["committed"] for r in preview.rows] == ["100000.00", "10000000.00"]


async def test_a_missing_column_is_one_error_on_the_header_row(pool):
    preview = await check(pool, xlsx([["A", "B"]], ["合作企业", "牵头单位"]))
    assert [(e.row, e.column) for e in preview.errors] == [
        (1, "项目名称"), (1, "协议投资额（万元）"), (1, "签约日期"), (1, "责任部门"), (1, "责任人")]
    expected = "missing column: the file needs a column headed 项目名称 or Project title"
    assert preview.errors[0].message == expected
    assert preview.rows == []


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "gb18030"])
async def test_csv_in_utf8_with_and_without_bom_and_in_gb18030(pool, api, encoding):
    w = await import_world(api.http)
    title = f"锂电池项目 {new_id()}"
    data = csv_text([good_row(w, title, amount="800")]).encode(encoding)
    if encoding == "utf-8-sig":
        assert data.startswith(b"\xef\xbb\xbf")
    preview = await check(pool, data, "list.csv")
    assert triples(preview) == []
    values = preview.rows[0]["values"]
    assert values["project_title"] == title
    assert values["partner_id"] == w.company_id
    assert values["committed"] == "8000000.00"


def test_headers_match_whatever_the_brackets_and_spacing():
    found = match_headers(["协议投资额(万元)", " 合作企业 ", "something else", "合作企业"])
    assert found == {"committed": (0, "协议投资额(万元)"), "partner": (1, "合作企业")}


@pytest.mark.parametrize("data, name", [
    (b"\x00\x01\x02binary\xff\xfe", "list.csv"),
    (b"PK\x03\x04 not really a zip", "list.xlsx"),
    (b"partner,lead\n", "list.xls"),
    (b"", "list.csv"),
    (b"\n\n", "list.csv"),
])
def test_unreadable_files(data, name):
    with pytest.raises(Unreadable):
        sheet = read(data, name)
        list(sheet.rows)


async def test_too_many_rows(pool, api):
    w = await import_world(api.http)
    with pytest.raises(v.TooManyRows):
        await check(pool, xlsx([good_row(w) for _ in range(4)]), max_rows=3)


async def test_a_5000_row_file_previews(pool, api):
    w = await import_world(api.http)
    rows = [good_row(w, f"项目 {i} {w.suffix}", amount=i + 0.25) for i in range(5000)]
    started = time.perf_counter()
    data = xlsx(rows)
    built = time.perf_counter()
    preview = await check(pool, data)
    checked = time.perf_counter()
    print(f"\n5,000-row .xlsx: {len(data):,} bytes, built in {built - started:.2f} s, "
          f"read and validated in {checked - built:.2f} s")
    assert preview.counts() == {"rows": 5000, "valid": 5000, "invalid": 0, "existing": 0, "errors": 0}
    assert preview.rows[-1]["row"] == 5001
