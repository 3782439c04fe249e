"""Defaults an office starts from: the review chain and the milestone template."""

from __future__ import annotations

from datetime import date, timedelta

DEFAULT_REVIEW_CHAIN: tuple[str, ...] = ("legal_review", "leadership_approval")
"""合法性审查 then 领导审批: every agreement passes both unless its draft names others."""

# (key, name, days after the investment agreement's signing). The offsets are the
# office's usual expectations for a headquarters-type project; staff adjust each date.
DEFAULT_MILESTONES: tuple[tuple[str, str, int], ...] = (
    ("company_registration", "Company registration 公司注册", 30),
    ("site", "Site / land secured 项目选址用地", 90),
    ("construction_start", "Construction start 开工", 180),
    ("completion", "Completion 竣工", 540),
    ("operation", "Operation 投产运营", 630),
    ("investment_target", "Investment target reached 投资达产", 1080),
)


def default_milestone_dates(signed_on: date) -> list[tuple[str, str, date]]:
    """The template's milestones with due dates counted from the signing date."""
    return [(key, name, signed_on + timedelta(days=days)) for key, name, days in DEFAULT_MILESTONES]
