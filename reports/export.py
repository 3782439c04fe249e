"""The portfolio report as a spreadsheet (.xlsx) and as CSV, with Chinese headers.

The workbook has one sheet per table, each with its header row frozen: 概况 (the parameters, the
rules version, the audit seq read up to and the totals), 项目 (one row per project), 部门, 合作方
and 行业 (the groups), 新增签约 (the counted signings), 新签协议 (the agreements signed in the
period) and 里程碑 (punctuality). Amounts are numbers in 万元 (yuan / 10,000, exact) with the
number format `WAN_FORMAT`, ratios real percentages, dates real dates: a spreadsheet can add them up.

The CSV is the projects sheet alone (UTF-8 with a byte-order mark, which Excel needs to read
Chinese), amounts in 万元 as plain decimals.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from reports.portfolio import PortfolioReport

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
WAN_FORMAT = '#,##0.00"万元"'
PERCENT_FORMAT = "0.00%"
DATE_FORMAT = "yyyy-mm-dd"
WAN = Decimal(10000)

STAGES = {"negotiating": "洽谈中", "framework_signed": "已签框架协议", "in_delivery": "项目推进中",
          "completed": "已完成", "terminated": "已终止"}
STATUSES = {"planned": "计划中", "active": "推进中", "suspended": "已暂停", "completed": "已完成",
            "cancelled": "已取消"}
SIGNING_KINDS = {"new": "新签", "upgrade": "升级增量", "capital_increase": "增资", "change_of_owner": "变更业主"}
AGREEMENT_KINDS = {"framework": "战略合作框架协议", "investment": "项目投资协议"}
YES = "是"


def wan(amount: Decimal) -> Decimal:
    return amount / WAN


def percent(value: Decimal | None) -> Decimal | None:
    return None if value is None else value / 100


# A column: (header, value of a row, number format or None).
Column = tuple[str, Callable[[Any], Any], str | None]

PROJECT_COLUMNS: list[Column] = [
    ("项目编号", lambda r: r.project_id, None),
    ("项目名称", lambda r: r.title, None),
    ("合作事项", lambda r: r.cooperation_title, None),
    ("合作方", lambda r: r.partner, None),
    ("责任部门", lambda r: r.department, None),
    ("行业", lambda r: r.industry, None),
    ("状态", lambda r: STATUSES.get(r.status, r.status), None),
    ("签约日期", lambda r: r.signed_on, DATE_FORMAT),
    ("开工日期", lambda r: r.started_on, DATE_FORMAT),
    ("计划完成日期", lambda r: r.due_date, DATE_FORMAT),
    ("签约投资额（万元）", lambda r: wan(r.committed), WAN_FORMAT),
    ("到位资金（万元）", lambda r: wan(r.realized), WAN_FORMAT),
    ("本期到位资金（万元）", lambda r: wan(r.realized_in_period), WAN_FORMAT),
    ("资金到位率", lambda r: percent(r.ratio), PERCENT_FORMAT),
    ("按期完成节点", lambda r: r.milestones.on_time, None),
    ("逾期完成节点", lambda r: r.milestones.late, None),
    ("逾期未完成节点", lambda r: r.milestones.open_overdue, None),
    ("未到期节点", lambda r: r.milestones.open, None),
    ("签约后未开工", lambda r: YES if r.no_start else "", None),
    ("逾期未完工", lambda r: YES if r.past_due else "", None),
    ("到位率低于阈值", lambda r: YES if r.realized_below else "", None),
]


def _group_columns(header: str) -> list[Column]:
    return [
        (header, lambda g: g.name or "（未填写）", None),
        ("项目数", lambda g: g.projects, None),
        ("签约投资额（万元）", lambda g: wan(g.committed), WAN_FORMAT),
        ("到位资金（万元）", lambda g: wan(g.realized), WAN_FORMAT),
        ("本期到位资金（万元）", lambda g: wan(g.realized_in_period), WAN_FORMAT),
        ("资金到位率", lambda g: percent(g.ratio), PERCENT_FORMAT),
    ]


SIGNING_COLUMNS: list[Column] = [
    ("项目编号", lambda s: s.project_id, None),
    ("项目名称", lambda s: s.title, None),
    ("责任部门", lambda s: s.department, None),
    ("计入方式", lambda s: SIGNING_KINDS[s.kind], None),
    ("计入金额（万元）", lambda s: wan(s.amount), WAN_FORMAT),
    ("签约日期", lambda s: s.signed_on, DATE_FORMAT),
]
AGREEMENT_COLUMNS: list[Column] = [
    ("合作事项", lambda a: a.cooperation_title, None),
    ("协议编号", lambda a: a.agreement_id, None),
    ("协议类型", lambda a: AGREEMENT_KINDS.get(a.kind, a.kind), None),
    ("协议名称", lambda a: a.title, None),
    ("签署日期", lambda a: a.signed_on, DATE_FORMAT),
]


def xlsx(report: PortfolioReport) -> bytes:
    book = Workbook()
    summary = book.active
    summary.title = "概况"
    _summary(summary, report)
    _table(book.create_sheet("项目"), PROJECT_COLUMNS, report.projects)
    _table(book.create_sheet("部门"), _group_columns("责任部门"), report.by_department)
    _table(book.create_sheet("合作方"), _group_columns("合作方"), report.by_partner)
    _table(book.create_sheet("行业"), _group_columns("行业"), report.by_industry)
    _table(book.create_sheet("新增签约"), SIGNING_COLUMNS, report.signings)
    _table(book.create_sheet("新签协议"), AGREEMENT_COLUMNS, report.signed_agreements)
    _table(book.create_sheet("里程碑"), [("节点状态", lambda r: r[0], None), ("数量", lambda r: r[1], None)],
           _punctuality(report))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _summary(sheet: Any, report: PortfolioReport) -> None:
    p, t = report.parameters, report.totals
    rows: list[tuple[str, Any, str | None]] = [
        ("统计截止日", p.as_of, DATE_FORMAT),
        ("统计期起始日", p.period_start, DATE_FORMAT),
        ("部门", p.department or "全部可见部门", None),
        ("数据截止时刻", report.instant.isoformat(), None),
        ("审计记录读取至序号", report.read_up_to_seq, None),
        ("统计规则版本", report.rules_version, None),
        ("生成时间", report.generated_at.isoformat(), None),
        ("未开工预警天数", p.no_start_days, None),
        ("到位率预警阈值", percent(p.realized_below), PERCENT_FORMAT),
        ("项目数", t.projects, None),
        ("签约投资额（万元）", wan(t.committed), WAN_FORMAT),
        ("到位资金（万元）", wan(t.realized), WAN_FORMAT),
        ("本期到位资金（万元）", wan(t.realized_in_period), WAN_FORMAT),
        ("资金到位率", percent(t.ratio), PERCENT_FORMAT),
        ("本期新增签约（万元）", wan(report.signed_total), WAN_FORMAT),
        *((f"合作事项：{STAGES[stage]}", count, None) for stage, count in report.stages.items()),
    ]
    _table(sheet, [("项目", lambda r: r[0], None), ("数值", lambda r: r[1], None)],
           rows, formats=[r[2] for r in rows])


def _table(sheet: Any, columns: Sequence[Column], rows: Sequence[Any], formats: list[str | None] | None = None) -> None:
    """A header row (bold, frozen) and one row per item; `formats`: per-row formats of the last column."""
    sheet.append([header for header, _value, _format in columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    for i, row in enumerate(rows):
        sheet.append([value(row) for _header, value, _format in columns])
        for j, (_header, _value, number_format) in enumerate(columns, start=1):
            cell = sheet.cell(row=i + 2, column=j)
            if cell.data_type == "f":  # text from users starting with "=": kept as text, never a formula
                cell.data_type = "s"
            chosen = formats[i] if formats is not None and j == len(columns) else number_format
            if chosen:
                cell.number_format = chosen
    for j, (header, _value, _format) in enumerate(columns, start=1):
        sheet.column_dimensions[get_column_letter(j)].width = max(10, len(header) * 2 + 2)


def _punctuality(report: PortfolioReport) -> list[tuple[str, int]]:
    m = report.punctuality
    return [("按期完成", m.on_time), ("逾期完成", m.late), ("逾期未完成", m.open_overdue), ("未到期", m.open)]


def csv_text(report: PortfolioReport) -> str:
    """The projects table; amounts in 万元 as plain decimals, ratios as percentages."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([header for header, _value, _format in PROJECT_COLUMNS])
    for row in report.projects:
        writer.writerow([_csv_cell(value(row), number_format) for _header, value, number_format in PROJECT_COLUMNS])
    return out.getvalue()


def _csv_cell(value: Any, number_format: str | None) -> str:
    if value is None:
        return ""
    if number_format == PERCENT_FORMAT:
        return f"{value * 100:.2f}%"
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, date):
        return value.isoformat()
    return _safe(str(value))


def _safe(text: str) -> str:
    """Names come from users: a cell starting like a formula is quoted so a spreadsheet shows it as text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
