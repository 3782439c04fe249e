"""The columns of an import file, with the Chinese and English headers staff may use.

A header matches its column whatever the language, letter case, spacing or width of the
brackets (协议投资额(万元) is 协议投资额（万元）); columns the file has beyond these are ignored.
One row is one cooperation with a signed framework agreement and a signed investment
agreement, and one project under the latter: the least that makes a project in Accord.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    key: str
    zh: str
    en: str
    required: bool

    @property
    def header(self) -> str:
        """How error messages name the column when the file did not (a missing column)."""
        return self.zh


COLUMNS: tuple[Column, ...] = (
    Column("partner", "合作企业", "Partner", True),
    Column("lead", "牵头单位", "Lead party", True),
    Column("project_title", "项目名称", "Project title", True),
    Column("cooperation_title", "合作名称", "Cooperation title", False),  # default: the project title
    Column("committed", "协议投资额（万元）", "Committed investment (万元)", True),
    Column("signed_on", "签约日期", "Signed on", True),  # the investment agreement's signing
    Column("framework_signed_on", "框架协议签约日期", "Framework signed on", False),  # default: signed_on
    Column("department", "责任部门", "Responsible department", True),
    Column("officer", "责任人", "Responsible officer", True),
    Column("site", "项目地点", "Site", False),
)
BY_KEY = {c.key: c for c in COLUMNS}


def normalize(header: object) -> str:
    """A header as compared: full-width brackets and spaces folded, case ignored."""
    text = str(header or "").translate(str.maketrans("（）　", "() "))
    return re.sub(r"\s+", "", text).lower()


_LOOKUP = {normalize(name): c for c in COLUMNS for name in (c.zh, c.en, c.key)}


def match_headers(headers: list[object]) -> dict[str, tuple[int, str]]:
    """The file's header row → {column key: (cell index, header as the file wrote it)}.

    The first cell naming a column wins; a repeated or unknown header is ignored."""
    found: dict[str, tuple[int, str]] = {}
    for index, header in enumerate(headers):
        column = _LOOKUP.get(normalize(header))
        if column is not None and column.key not in found:
            found[column.key] = (index, str(header).strip())
    return found
