"""Row-level validation of an import file: every problem as (row, column, reason), nothing written.

The row number is the one the user sees in the spreadsheet (the header is row 1) and the
column is named by the header the file itself used, so a message points at one cell. A
reason is an English sentence with `%(name)s` blanks and its params: the API fills them in,
the page translates the sentence first (web/locale/zh/LC_MESSAGES/imports.po).

Organizations must already be in the registry (`db.queries.organization_by_name`) and the
responsible department must exist: an import never invents reference data. A row whose
partner already has a project of the same title in Accord is not an error but "existing":
it was imported before (or entered by hand) and is left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg

from db import departments, imports as import_store, queries
from imports.columns import BY_KEY, COLUMNS, match_headers
from imports.parse import Sheet

WAN = Decimal(10000)
CENT = Decimal("0.01")
MAX_YUAN = Decimal("99999999999999.99")  # numeric(16,2)
MAX_TEXT = 200

# Reasons, as message ids (translated on the page).
MISSING_COLUMN = "missing column: the file needs a column headed %(zh)s or %(en)s"
EMPTY = "empty, but this column is required"
TOO_LONG = "longer than %(max)s characters"
NOT_A_DATE = "not a date: write it as YYYY-MM-DD"
FUTURE = "in the future: only agreements already signed can be imported"
BEFORE_FRAMEWORK = "before the framework agreement was signed (%(date)s)"
NOT_A_NUMBER = "not an amount: write a number of 万元, e.g. 1250.5"
NEGATIVE = "negative: an amount must be zero or more"
TOO_PRECISE = "too precise: at most six decimals in 万元 (one fen)"
TOO_LARGE = "too large an amount"
UNKNOWN_ORGANIZATION = "no organization of this name in the registry: register it first"
NOT_A_COMPANY = "not a company: the partner must be a company"
NOT_A_GOVERNMENT_BODY = "a company: the lead party must be a government body"
SAME_ORGANIZATION = "the same organization as the partner"
UNKNOWN_DEPARTMENT = "no department of this name"
DUPLICATE = "the same partner and project title as row %(row)s"
REASONS = (MISSING_COLUMN, EMPTY, TOO_LONG, NOT_A_DATE, FUTURE, BEFORE_FRAMEWORK, NOT_A_NUMBER, NEGATIVE,
           TOO_PRECISE, TOO_LARGE, UNKNOWN_ORGANIZATION, NOT_A_COMPANY, NOT_A_GOVERNMENT_BODY, SAME_ORGANIZATION,
           UNKNOWN_DEPARTMENT, DUPLICATE)

_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


class TooManyRows(ValueError):
    """More data rows than one import takes (HTTP 413)."""


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    reason: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return self.reason % self.params if self.params else self.reason

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "reason": self.reason, "params": self.params,
                "message": self.message}


@dataclass
class Preview:
    """What an import would do: every data row with its status, and every error."""

    headers: dict[str, str]  # column key → the header the file used
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        statuses = [r["status"] for r in self.rows]
        return {"rows": len(statuses), "valid": statuses.count("valid"), "invalid": statuses.count("invalid"),
                "existing": statuses.count("existing"), "errors": len(self.errors)}


@dataclass
class _Registry:
    """Organizations and departments looked up once per distinct name: names repeat down a list."""

    conn: asyncpg.Connection
    organizations: dict[str, asyncpg.Record | None] = field(default_factory=dict)
    departments: dict[str, bool] = field(default_factory=dict)

    async def organization(self, name: str) -> asyncpg.Record | None:
        key = name.lower()
        if key not in self.organizations:
            self.organizations[key] = await queries.organization_by_name(self.conn, name)
        return self.organizations[key]

    async def department(self, name: str) -> bool:
        if name not in self.departments:
            self.departments[name] = await departments.department(self.conn, name) is not None
        return self.departments[name]


async def validate(conn: asyncpg.Connection, sheet: Sheet, today: date, max_rows: int) -> Preview:
    """Check every row of `sheet`; TooManyRows past `max_rows` data rows."""
    found = match_headers(sheet.headers)
    preview = Preview({key: header for key, (_, header) in found.items()})
    missing = [c for c in COLUMNS if c.required and c.key not in found]
    if missing:
        preview.errors = [RowError(1, c.zh, MISSING_COLUMN, {"zh": c.zh, "en": c.en}) for c in missing]
        return preview
    registry = _Registry(conn)
    seen: dict[tuple[str, str], int] = {}
    for number, cells in sheet.rows:
        if not any(c is not None and str(c).strip() for c in cells):
            continue  # a blank line between blocks of rows
        if len(preview.rows) >= max_rows:
            raise TooManyRows(f"more than {max_rows} rows; split the file")
        checker = _Row(number, cells, found)
        values = await checker.check(registry, today)
        key = (values.get("partner_id") or "", (values.get("project_title") or "").lower())
        if all(key) and key in seen:
            checker.fail("project_title", DUPLICATE, row=seen[key])
        elif all(key):
            seen[key] = number
        preview.rows.append({"row": number, "status": "invalid" if checker.errors else "valid", "values": values})
        preview.errors.extend(checker.errors)
    await _mark_existing(conn, preview)
    return preview


async def _mark_existing(conn: asyncpg.Connection, preview: Preview) -> None:
    """Valid rows whose partner already has a project of this title: already in Accord."""
    candidates = [r for r in preview.rows if r["status"] == "valid"]
    existing = await import_store.existing_projects(
        conn, [(r["values"]["partner_id"], r["values"]["project_title"]) for r in candidates])
    for row in candidates:
        hit = existing.get((row["values"]["partner_id"], row["values"]["project_title"].lower()))
        if hit is not None:
            row["status"] = "existing"
            row["result"] = hit


class _Row:
    """One data row: its cells by column, the values it gives and its errors."""

    def __init__(self, number: int, cells: list[Any], found: dict[str, tuple[int, str]]) -> None:
        self.number, self.errors = number, []
        self.headers = {key: header for key, (_, header) in found.items()}
        self.cells = {key: cells[index] if index < len(cells) else None for key, (index, _) in found.items()}

    def fail(self, key: str, reason: str, **params: Any) -> None:
        self.errors.append(RowError(self.number, self.headers.get(key, BY_KEY[key].zh), reason, params))

    async def check(self, registry: _Registry, today: date) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key in ("project_title", "cooperation_title", "officer", "site"):
            values[key] = self.text(key)
        values["cooperation_title"] = values["cooperation_title"] or values["project_title"]
        committed = self.amount("committed")
        values["committed"] = None if committed is None else str(committed)
        framework, signed = self.day("framework_signed_on", today), self.day("signed_on", today)
        framework = framework or (signed if self.cells.get("framework_signed_on") in (None, "") else None)
        if framework and signed and signed < framework:
            self.fail("signed_on", BEFORE_FRAMEWORK, date=framework.isoformat())
        values["signed_on"] = signed and signed.isoformat()
        values["framework_signed_on"] = framework and framework.isoformat()
        await self.organizations(registry, values)
        department = self.text("department")
        if department and not await registry.department(department):
            self.fail("department", UNKNOWN_DEPARTMENT)
        values["department"] = department
        return values

    async def organizations(self, registry: _Registry, values: dict[str, Any]) -> None:
        partner_name, lead_name = self.text("partner"), self.text("lead")
        partner = await registry.organization(partner_name) if partner_name else None
        lead = await registry.organization(lead_name) if lead_name else None
        if partner_name and partner is None:
            self.fail("partner", UNKNOWN_ORGANIZATION)
        elif partner is not None and partner["kind"] != "company":
            self.fail("partner", NOT_A_COMPANY)
        if lead_name and lead is None:
            self.fail("lead", UNKNOWN_ORGANIZATION)
        elif lead is not None and lead["kind"] == "company":
            self.fail("lead", NOT_A_GOVERNMENT_BODY)
        elif lead is not None and partner is not None and lead["id"] == partner["id"]:
            self.fail("lead", SAME_ORGANIZATION)
        values.update(partner=partner["name"] if partner else partner_name, partner_id=partner and partner["id"],
                      lead=lead["name"] if lead else lead_name, lead_id=lead and lead["id"])

    def text(self, key: str) -> str | None:
        """The cell as text; an empty required cell or an overlong one is an error."""
        raw = self.cells.get(key)
        text = "" if raw is None else (f"{raw:g}" if isinstance(raw, float) else str(raw)).strip()
        if not text:
            if BY_KEY[key].required:
                self.fail(key, EMPTY)
            return None
        if len(text) > MAX_TEXT or "\x00" in text:
            self.fail(key, TOO_LONG, max=MAX_TEXT)
            return None
        return text

    def day(self, key: str, today: date) -> date | None:
        """A date cell (Excel's own date, or text as 2024-06-15, 2024/6/15, 2024年6月15日); not after today."""
        raw = self.cells.get(key)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if BY_KEY[key].required:
                self.fail(key, EMPTY)
            return None
        value = _as_date(raw)
        if value is None:
            self.fail(key, NOT_A_DATE)
        elif value > today:
            self.fail(key, FUTURE)
            return None
        return value

    def amount(self, key: str) -> Decimal | None:
        """An amount of 万元 (a number cell or text with separators) as exact yuan."""
        raw = self.cells.get(key)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            self.fail(key, EMPTY)
            return None
        wan = _as_decimal(raw)
        if wan is None:
            self.fail(key, NOT_A_NUMBER)
            return None
        yuan = wan * WAN
        if wan < 0:
            self.fail(key, NEGATIVE)
        elif yuan != yuan.quantize(CENT):
            self.fail(key, TOO_PRECISE)
        elif yuan > MAX_YUAN:
            self.fail(key, TOO_LARGE)
        else:
            return yuan.quantize(CENT)
        return None


def _as_date(raw: Any) -> date | None:
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    if not isinstance(raw, str):
        return None
    found = _DATE.match(raw.strip())
    if found is None:
        return None
    try:
        return date(*(int(part) for part in found.groups()))
    except ValueError:  # 2024-02-30
        return None


def _as_decimal(raw: Any) -> Decimal | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        text = repr(raw)  # the shortest text that is this float: 1250.5, not 1250.4999…
    else:
        text = str(raw).strip().translate(str.maketrans("０１２３４５６７８９．－", "0123456789.-"))
        text = re.sub(r"[,，\s\u00a0]", "", text)
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None
