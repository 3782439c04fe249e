"""Reading an import file row by row: .xlsx (openpyxl, read-only) or CSV.

CSV comes from Excel and WPS in UTF-8 (with or without a byte-order mark) or, from older
Chinese Windows, GB18030 (a superset of GBK and GB2312): UTF-8 is tried first because a
GB18030 decoding of UTF-8 bytes rarely fails but gives nonsense, and the reverse fails fast.
Row numbers are the ones the user sees in the spreadsheet: the header is row 1.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException

XLSX_MAGIC = b"PK\x03\x04"


class Unreadable(ValueError):
    """Not a spreadsheet we can read (HTTP 422); the message says why."""


@dataclass
class Sheet:
    """The header row, and the data rows as (row number, cells), read lazily."""

    headers: list[Any]
    rows: Iterator[tuple[int, list[Any]]]


def read(data: bytes, file_name: str = "") -> Sheet:
    """The first worksheet of an .xlsx, or a CSV file; Unreadable if it is neither or is empty."""
    if data.startswith(XLSX_MAGIC):
        return _xlsx(data)
    if file_name.lower().endswith((".xlsx", ".xlsm", ".xls")):
        raise Unreadable("not a valid .xlsx workbook (an old .xls must be saved as .xlsx or CSV first)")
    return _csv(data)


def _first(rows: Iterator[tuple[int, list[Any]]]) -> Sheet:
    for number, cells in rows:
        if any(_filled(c) for c in cells):
            if number != 1:
                raise Unreadable("the first row must hold the column headers")
            return Sheet(list(cells), rows)
    raise Unreadable("the file is empty")


def _filled(cell: Any) -> bool:
    return cell is not None and str(cell).strip() != ""


def _xlsx(data: bytes) -> Sheet:
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = book.worksheets[0]
    except (zipfile.BadZipFile, InvalidFileException, KeyError, IndexError, OSError, ValueError) as error:
        raise Unreadable(f"not a valid .xlsx workbook ({type(error).__name__})") from None

    def rows() -> Iterator[tuple[int, list[Any]]]:
        try:
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                yield number, list(values)
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
            raise Unreadable(f"the workbook is damaged ({type(error).__name__})") from None
        finally:
            book.close()

    return _first(rows())


def decode(data: bytes) -> str:
    """UTF-8 (a BOM is dropped), else GB18030; Unreadable if neither fits."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for encoding in ("utf-8", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            break  # UTF-16 or a binary file
        return text
    raise Unreadable("not a spreadsheet: neither an .xlsx workbook nor CSV text in UTF-8 or GB18030")


def _csv(data: bytes) -> Sheet:
    text = decode(data)
    delimiter = _delimiter(text.split("\n", 1)[0])

    def rows() -> Iterator[tuple[int, list[Any]]]:
        try:
            for number, values in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1):
                yield number, values
        except csv.Error as error:
            raise Unreadable(f"the CSV text is malformed ({error})") from None

    return _first(rows())


def _delimiter(header_line: str) -> str:
    """Commas, unless the header line has none and is split by tabs or (European Excel) semicolons."""
    if "," in header_line:
        return ","
    return "\t" if "\t" in header_line else ";" if ";" in header_line else ","
