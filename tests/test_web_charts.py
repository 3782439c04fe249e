"""The SVG charts (web/charts.py) and the labels they use (web/labels.py): valid SVG, every text
escaped, labelled for screen readers, meaning carried by shape and text as well as colour."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from web.charts import investment_bars, milestone_timeline, stage_funnel
from web.i18n import gettext_for
from web.labels import action_label, agreement_kind_label, milestone_label, stage_label, status_label

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script> & Co. \'quoted\''
TODAY = date(2026, 11, 25)
en, zh = gettext_for("en"), gettext_for("zh")


def parsed(markup) -> ET.Element:
    """The chart as XML: it must parse, be an accessible image and carry no style attribute."""
    text = str(markup)
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img" and root.get("aria-label"), "an image with a name"
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}title").text == root.get("aria-label")
    assert "chart" in root.get("class", "").split()
    assert not any(e.get("style") is not None for e in root.iter()), "no style attributes (CSP)"
    assert "<script" not in text
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(e.itertext()) for e in root.iter(f"{SVG}text")]


def titles(root: ET.Element) -> list[str]:
    return [e.text or "" for e in root.iter(f"{SVG}title")]


# ---------------------------------------------------------------- stage funnel


def test_the_funnel_names_and_counts_every_stage():
    root = parsed(stage_funnel({"negotiating": 12, "in_delivery": 3, "terminated": 1}, en, "en"))
    shown = texts(root)
    for name, count in (("Negotiating", "12"), ("Framework signed", "0"), ("In delivery", "3"), ("Completed", "0"),
                        ("Terminated", "1")):
        assert name in shown and f"{name}: {count}" in titles(root), name
    assert shown.index("Negotiating") < shown.index("In delivery") < shown.index("Terminated")
    assert "Negotiating 12" in root.get("aria-label")
    assert len(root.findall(f".//{SVG}rect")) == 5


def test_the_funnel_speaks_chinese_with_separators():
    root = parsed(stage_funnel({"negotiating": 1234}, zh, "zh"))
    assert "洽谈中" in texts(root) and "1,234" in texts(root)
    assert "洽谈中 1,234、框架协议已签署 0" in root.get("aria-label")


def test_an_unknown_stage_in_the_counts_does_not_break_the_funnel():
    parsed(stage_funnel({"archived": 4}, en, "en"))


# ---------------------------------------------------------------- investment bars


def test_investment_bars_write_amounts_in_wan_and_draw_realized_as_a_thinner_bar():
    projects = [{"title": "Regional HQ 区域总部", "committed": Decimal("50000000.00"), "realized": Decimal("12000000.00")},
                SimpleNamespace(title="Lab", committed=Decimal("0"), realized=Decimal("0"))]
    root = parsed(investment_bars(projects, zh, "zh"))
    assert "协议投资 5,000.00 万元，已到位 1,200.00 万元（到位率 24%）" in texts(root)
    assert "协议投资 0.00 万元，已到位 0.00 万元" in texts(root)
    assert "Regional HQ 区域总部" in texts(root) and "协议投资额" in texts(root) and "实际到位资金" in texts(root)
    committed = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "committed"]
    realized = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "realized"]
    # One of each per project plus the legend's; realized is a different shape: thinner.
    assert len(committed) == len(realized) == 3
    assert all(float(r.get("height")) < float(c.get("height")) for r, c in zip(realized, committed, strict=True))
    assert float(committed[1].get("width")) == 500 and float(realized[1].get("width")) == 120


def test_a_hostile_project_name_is_escaped():
    markup = investment_bars([{"title": HOSTILE, "committed": Decimal(1), "realized": Decimal(2)}], en, "en")
    root = parsed(markup)
    assert "&lt;script&gt;" in str(markup)
    assert any(t.startswith('<script>alert("x")</script> & Co.') for t in texts(root))
    assert any(t.startswith('<script>alert("x")</script>') for t in titles(root))


def test_long_names_are_shortened_and_kept_whole_in_the_title():
    name = "很长的项目名称" * 20
    root = parsed(investment_bars([{"title": name, "committed": Decimal(1), "realized": Decimal(0)}], zh, "zh"))
    (label,) = [t for t in texts(root) if t.startswith("很长")]
    assert label.endswith("…") and len(label) < len(name)
    assert any(t.startswith(name) for t in titles(root))


def test_no_projects_says_so():
    assert "No projects yet." in texts(parsed(investment_bars([], en, "en")))


# ---------------------------------------------------------------- milestone timeline


def milestone(name: str, due_in: int, done_in: int | None = None) -> dict:
    return {"name": name, "due_date": TODAY + timedelta(days=due_in),
            "completed_on": TODAY + timedelta(days=done_in) if done_in is not None else None}


def test_the_timeline_tells_done_open_and_overdue_apart_by_shape_and_words():
    root = parsed(milestone_timeline([milestone("company_registration", -40, -45),
                                      milestone("Construction start 开工", -12),
                                      milestone(HOSTILE, 20)], TODAY, en, "en"))
    shown = texts(root)
    assert "Company registration" in shown and "Construction start" in shown
    assert "Done on 11 Oct 2026" in shown
    assert "12 days overdue (due 13 Nov 2026)" in shown
    assert "Due in 20 days (due 15 Dec 2026)" in shown
    assert any(t.startswith('<script>alert("x")</script>') for t in shown)
    # Shapes: a filled circle (done), an open circle (open), a diamond (overdue), plus the legend's.
    circles = [c.get("class") for c in root.iter(f"{SVG}circle")]
    assert circles.count("done") == 2 and circles.count("open") == 2
    assert [p.get("class") for p in root.iter(f"{SVG}polygon")] == ["late", "late"]
    late_text = [t for t in root.iter(f"{SVG}text") if "overdue" in "".join(t.itertext())]
    assert late_text and late_text[0].get("class") == "late"
    assert {"Done", "Open", "Overdue"} <= set(shown)
    # Today: a labelled line, inside the chart.
    (today,) = [line for line in root.iter(f"{SVG}line") if line.get("class") == "today"]
    assert "Today, 25 Nov 2026" in shown and "Today: 25 Nov 2026" in titles(root)
    width = float(root.get("width"))
    assert 0 < float(today.get("x1")) < width
    assert root.get("aria-label") == "Milestones: 1 done, 1 open, 1 overdue; today is 25 Nov 2026"
    assert "Company registration: Done on 11 Oct 2026" in titles(root)


def test_the_timeline_in_chinese_and_from_objects():
    rows = [SimpleNamespace(name="site", due_date=TODAY - timedelta(days=1), completed_on=None),
            SimpleNamespace(name="现场办公会", due_date=TODAY, completed_on=None),
            SimpleNamespace(name="试生产", due_date=TODAY + timedelta(days=1), completed_on=None)]
    root = parsed(milestone_timeline(rows, TODAY, zh, "zh"))
    shown = texts(root)
    assert "项目选址用地" in shown and "现场办公会" in shown
    assert "已逾期 1 天（截止 2026年11月24日）" in shown
    assert "今天到期（截止 2026年11月25日）" in shown and "明天到期（截止 2026年11月26日）" in shown
    assert "今天 2026年11月25日" in shown


@pytest.mark.parametrize("span_days", [0, 3, 40, 400, 3000, 40000])
def test_the_axis_has_a_few_readable_ticks_for_any_span(span_days):
    root = parsed(milestone_timeline([milestone("a", -span_days), milestone("b", span_days)], TODAY, en, "en"))
    width = float(root.get("width"))
    ticks = [t for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "middle"]
    assert len(ticks) <= 7, [t.text for t in ticks]
    assert all(0 <= float(t.get("x")) <= width for t in ticks)
    assert all(0 <= float(c.get("cx")) <= width for c in root.iter(f"{SVG}circle"))


def test_no_milestones_says_so():
    root = parsed(milestone_timeline([], TODAY, en, "en"))
    assert texts(root) == ["No milestones."]


# ---------------------------------------------------------------- labels


def test_labels_in_both_languages_and_unknown_values_shown_as_they_are():
    assert stage_label("in_delivery", en) == "In delivery" and stage_label("in_delivery", zh) == "实施中"
    assert status_label("suspended", zh) == "已暂停" and status_label("mothballed", zh) == "mothballed"
    assert agreement_kind_label("investment", zh) == "项目投资协议"
    assert milestone_label("construction_start", zh) == "开工"
    assert milestone_label("Construction start 开工", en) == "Construction start"
    assert milestone_label("Our own milestone", zh) == "Our own milestone"
    assert action_label("milestone.completed", zh) == "节点完成" and action_label("x.y", zh) == "x.y"


def test_every_chart_is_free_of_inline_style_and_script():
    charts = [stage_funnel({}, zh, "zh"), investment_bars([], zh, "zh"), milestone_timeline([], TODAY, zh, "zh")]
    for chart in charts:
        assert not re.search(r"\sstyle=|\son\w+=|<script", str(chart))
