"""Charts as inline SVG, drawn on the server: no script, no style attribute (strict CSP), readable
without colour.

Each function returns `markupsafe.Markup` holding one `<svg class="chart" role="img">` with an
`aria-label` and a `<title>` summing it up, a `<title>` on every mark, and every number also
written as text. Every piece of text (names come from users) is escaped; the markup is valid
XML, so it also works as an SVG file. Colours and strokes come from the `svg.chart` rules in
web/static/accord.css through classes; shapes and text carry the meaning on their own:

* `stage_funnel`: one bar per stage, each labelled with its name and count;
* `investment_bars`: committed investment as an outlined bar, the realized part as a thin solid
  bar inside it, both amounts as text in 万元;
* `milestone_timeline`: one row per milestone on a time axis, today marked by a labelled line;
  done ● / open ○ / overdue ◆ are different shapes, and each row says its state in words.

`_` is the page's gettext (`who._`, or `_` in a template), `language` the page's language
("zh" or "en"), used for numbers, amounts and dates.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from babel.dates import format_date
from markupsafe import Markup

from web import formats
from web.i18n import BABEL_LOCALE
from web.labels import STAGE_ORDER, due_in_label, milestone_label, overdue_label, stage_label

Gettext = Callable[..., str]

_LABEL_UNITS = 34
"""How much text fits in a label column: a Latin letter counts 1, a Chinese character 2."""


# ---------------------------------------------------------------- building blocks


def _n(value: float) -> str:
    """A coordinate: short, and never in exponent notation."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _svg(width: int, height: int, label: str, body: Markup, kind: str) -> Markup:
    return Markup(
        '<svg xmlns="http://www.w3.org/2000/svg" class="chart {kind}" role="img" aria-label="{label}" '
        'viewBox="0 0 {w} {h}" width="{w}" height="{h}"><title>{label}</title>{body}</svg>'
    ).format(kind=kind, label=label, w=width, h=height, body=body)


def _text(x: float, y: float, content: str, cls: str | None = None, anchor: str = "start") -> Markup:
    return Markup('<text x="{x}" y="{y}" text-anchor="{anchor}"{cls}>{content}</text>').format(
        x=_n(x), y=_n(y), anchor=anchor, content=content,
        cls=Markup(' class="{}"').format(cls) if cls else "")


def _rect(x: float, y: float, width: float, height: float, cls: str) -> Markup:
    return Markup('<rect x="{}" y="{}" width="{}" height="{}" class="{}"/>').format(
        _n(x), _n(y), _n(max(width, 0)), _n(height), cls)


def _group(title: str, *parts: Markup) -> Markup:
    """A mark and its text, with a tooltip (and an accessible name) saying it in words."""
    return Markup("<g><title>{}</title>{}</g>").format(title, Markup("").join(parts))


def _fit(text: str, units: int = _LABEL_UNITS) -> str:
    """Shortened with "…" to fit a label column (SVG text does not wrap); the full text is in the <title>."""
    used = 0
    for i, char in enumerate(text):
        used += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
        if used > units:
            return text[:i].rstrip() + "…"
    return text


def _field(item: Any, name: str) -> Any:
    """Charts take dicts, database rows (asyncpg records) and objects (pydantic models) alike."""
    return item[name] if hasattr(item, "keys") else getattr(item, name)


# ---------------------------------------------------------------- cooperations by stage


def stage_funnel(counts: Mapping[str, int], _: Gettext, language: str) -> Markup:
    """Cooperations by stage: a funnel from negotiation to completion, terminated ones set apart.

    `counts`: stage value (domain.cooperation.Stage) → number of cooperations; missing stages count 0."""
    width, label_right, bar_left, bar_width, count_right = 560, 150, 160, 340, 552
    row, gap, top = 30, 6, 4
    tallest = max([counts.get(stage.value, 0) for stage in STAGE_ORDER] + [1])
    parts, summary = [], []
    y = top
    for stage in STAGE_ORDER:
        count = counts.get(stage.value, 0)
        name = stage_label(stage, _)
        summary.append(f"{name} {formats.number(count, language)}")
        if stage == "terminated":  # not a step of the funnel: an exit from any stage
            y += gap * 2
            parts.append(Markup('<line x1="0" y1="{y}" x2="{w}" y2="{y}" class="guide"/>').format(
                y=_n(y - gap), w=width))
        # A centred bar narrowing with the count; an empty stage still shows a sliver.
        bar = max(bar_width * count / tallest, 2)
        parts.append(_group(
            _("%(stage)s: %(count)s", stage=name, count=formats.number(count, language)),
            _rect(bar_left + (bar_width - bar) / 2, y, bar, row, "stage ended" if stage == "terminated" else "stage"),
            _text(label_right, y + row / 2 + 4, _fit(name, 24), anchor="end"),
            _text(count_right, y + row / 2 + 4, formats.number(count, language), "count", anchor="end"),
        ))
        y += row + gap
    label = _("Cooperations by stage: %(summary)s", summary=_list(summary, language))
    return _svg(width, int(y), label, Markup("").join(parts), "funnel")


def _list(items: list[str], language: str) -> str:
    return ("、" if language == "zh" else ", ").join(items)


# ---------------------------------------------------------------- investment by project


def investment_bars(projects: Sequence[Any], _: Gettext, language: str) -> Markup:
    """Committed against realized investment, one row per project.

    `projects`: dicts, rows or objects with `title` (str), `committed` and `realized` (Decimal, yuan).
    The committed amount is an outlined bar, the realized amount a thin solid bar inside it
    (a different shape, not only a different colour), and both are written out in 万元."""
    width, left, bar_width, row, top = 540, 4, 500, 58, 30
    amounts = [(Decimal(_field(p, "committed")), Decimal(_field(p, "realized"))) for p in projects]
    largest = max([max(c, r) for c, r in amounts] + [Decimal(1)])
    parts = [_legend_investment(_, left)]
    y = top
    for project, (committed, realized) in zip(projects, amounts, strict=True):
        title = str(_field(project, "title"))
        words = _investment_words(committed, realized, _, language)
        parts.append(_group(
            f"{title}: {words}",
            _text(left, y + 12, _fit(title, 76)),
            _rect(left, y + 18, float(bar_width * committed / largest), 16, "committed"),
            _rect(left, y + 23, float(bar_width * realized / largest), 6, "realized"),
            _text(left, y + 50, words, "note"),
        ))
        y += row
    if not projects:
        parts.append(_text(left, y + 14, _("No projects yet."), "note"))
        y += 24
    label = _("Committed and realized investment by project (%(count)s shown)", count=len(projects))
    return _svg(width, int(y), label, Markup("").join(parts), "investment")


def _investment_words(committed: Decimal, realized: Decimal, _: Gettext, language: str) -> str:
    amounts = {"committed": formats.wan(committed, language), "realized": formats.wan(realized, language)}
    if committed > 0:
        return _("committed %(committed)s, realized %(realized)s (%(percent)s%% realized)",
                 percent=formats.number(realized * 100 / committed, language, 0), **amounts)
    return _("committed %(committed)s, realized %(realized)s", **amounts)


def _legend_investment(_: Gettext, left: float) -> Markup:
    return Markup("").join([
        _rect(left, 6, 28, 14, "committed"), _text(left + 34, 17, _("Committed investment")),
        _rect(left + 200, 10, 28, 6, "realized"), _text(left + 234, 17, _("Realized investment")),
    ])


# ---------------------------------------------------------------- milestones on a time axis


def milestone_timeline(milestones: Sequence[Any], today: date, _: Gettext, language: str) -> Markup:
    """A project's milestones on a time axis, with today marked.

    `milestones`: dicts, rows or objects with `name` (str: a template milestone's key or name is shown
    in the user's language), `due_date` (date) and `completed_on` (date or None: still open).
    An open milestone past its due date is overdue. Rows keep the given order."""
    width, text_left, plot_left, plot_right = 720, 4, 270, 708
    row, top = 40, 30
    rows = [(str(_field(m, "name")), _field(m, "due_date"), _field(m, "completed_on")) for m in milestones]
    if not rows:
        return _svg(width, 30, _("No milestones."), _text(text_left, 18, _("No milestones."), "note"), "timeline")
    start, end = _date_range([d for _name, due, done in rows for d in (due, done) if d] + [today])

    def x(day: date) -> float:
        return plot_left + (day - start).days / (end - start).days * (plot_right - plot_left)

    parts: list[Markup] = []
    states = {"done": 0, "open": 0, "late": 0}
    for i, (name, due, done) in enumerate(rows):
        state, words = _milestone_state(due, done, today, _, language)
        states[state] += 1
        label = milestone_label(name, _)
        y = top + i * row
        parts.append(_group(
            f"{label}: {words}",
            Markup('<line x1="{}" y1="{y}" x2="{}" y2="{y}" class="guide"/>').format(
                _n(plot_left), _n(plot_right), y=_n(y + 14)),
            _marker(state, x(due), y + 14),
            _text(text_left, y + 12, _fit(label)),
            _text(text_left, y + 28, _fit(words, 44), "late" if state == "late" else "note"),
        ))
    axis_y = top + len(rows) * row
    parts.append(_axis(start, end, x, plot_left, plot_right, axis_y, language))
    parts.append(_today_line(today, x(today), top - 16, axis_y, plot_left, plot_right, _, language))
    parts.append(_legend_milestones(axis_y + 40, text_left, _))
    summary = _("Milestones: %(done)s done, %(open)s open, %(late)s overdue; today is %(today)s",
                done=states["done"], open=states["open"], late=states["late"], today=formats.day(today, language))
    return _svg(width, axis_y + 52, summary, Markup("").join(parts), "timeline")


def _milestone_state(due: date, done: date | None, today: date, _: Gettext, language: str) -> tuple[str, str]:
    """("done" | "open" | "late", the state in words)."""
    if done is not None:
        return "done", _("Done on %(date)s", date=formats.day(done, language))
    state = "late" if due < today else "open"
    when = overdue_label((today - due).days, _) if state == "late" else due_in_label((due - today).days, _)
    return state, _("%(when)s (due %(date)s)", when=when, date=formats.day(due, language))


def _marker(state: str, x: float, y: float) -> Markup:
    if state == "late":  # a diamond: overdue stands out by shape, not only by its red
        points = f"{_n(x)},{_n(y - 8)} {_n(x + 8)},{_n(y)} {_n(x)},{_n(y + 8)} {_n(x - 8)},{_n(y)}"
        return Markup('<polygon points="{}" class="late"/>').format(points)
    return Markup('<circle cx="{}" cy="{}" r="6" class="{}"/>').format(_n(x), _n(y), state)


def _date_range(days: list[date]) -> tuple[date, date]:
    """The axis: every date with a margin, at least a month wide."""
    first, last = min(days), max(days)
    margin = max(timedelta(days=7), (last - first) / 20)
    start, end = first - margin, last + margin
    if (end - start).days < 30:
        end = start + timedelta(days=30)
    return start, end


def _axis(start: date, end: date, x: Callable[[date], float], left: float, right: float, y: float,
          language: str) -> Markup:
    parts = [Markup('<line x1="{}" y1="{y}" x2="{}" y2="{y}" class="axis"/>').format(_n(left), _n(right), y=_n(y))]
    step = _tick_months(start, end)
    pattern = ("y年" if language == "zh" else "y") if step >= 12 else ("y年M月" if language == "zh" else "MMM y")
    for tick in _ticks(start, end, step):
        parts.append(Markup('<line x1="{x}" y1="{}" x2="{x}" y2="{}" class="axis"/>').format(
            _n(y), _n(y + 5), x=_n(x(tick))))
        parts.append(_text(x(tick), y + 18, format_date(tick, pattern, locale=BABEL_LOCALE[language]), "note",
                           "middle"))
    return Markup("").join(parts)


def _tick_months(start: date, end: date) -> int:
    """Months between ticks: the smallest of 1, 3, 6, 12, 24, 60, … giving at most six ticks."""
    span = (end.year - start.year) * 12 + end.month - start.month + 1
    step = next((s for s in (1, 3, 6, 12, 24, 60) if span / s <= 6), 120)
    while span / step > 6:
        step *= 2
    return step


def _ticks(start: date, end: date, step: int) -> list[date]:
    """First days of months that are multiples of `step` months (January for years), inside the range."""
    month = (start.year * 12 + start.month - 1) // step * step
    ticks = []
    while (tick := date(month // 12, month % 12 + 1, 1)) <= end:
        if tick >= start:
            ticks.append(tick)
        month += step
    return ticks


def _today_line(today: date, x: float, top: float, bottom: float, left: float, right: float, _: Gettext,
                language: str) -> Markup:
    # The label sits above the line, kept inside the chart when today is near either end.
    anchor = "start" if x - left < 60 else "end" if right - x < 60 else "middle"
    return _group(
        _("Today: %(date)s", date=formats.day(today, language)),
        Markup('<line x1="{x}" y1="{}" x2="{x}" y2="{}" class="today"/>').format(_n(top + 4), _n(bottom), x=_n(x)),
        _text(x, top, _("Today, %(date)s", date=formats.day(today, language)), "today-label", anchor),
    )


def _legend_milestones(y: float, left: float, _: Gettext) -> Markup:
    entries = [("done", _("Done")), ("open", _("Open")), ("late", _("Overdue"))]
    parts = []
    for i, (state, text) in enumerate(entries):
        x = left + 8 + i * 130
        parts.append(_marker(state, x, y - 4))
        parts.append(_text(x + 14, y, text))
    return Markup("").join(parts)


# ---------------------------------------------------------------- milestone punctuality (portfolio report)


def punctuality_bars(counts: Mapping[str, int], _: Gettext, language: str) -> Markup:
    """Milestones by punctuality: one bar per state, each with its name, its marker shape
    (as in `milestone_timeline`: done ●, overdue ◆, open ○) and its count written out.

    `counts`: "on_time", "late" (done after the due date), "open_overdue", "open" → number."""
    width, label_right, bar_left, bar_width, count_right, row = 560, 190, 200, 300, 552, 30
    rows = [("on_time", _("Done on time"), "done"), ("late", _("Done late"), "late"),
            ("open_overdue", _("Open, overdue"), "late"), ("open", _("Open, not yet due"), "open")]
    largest = max([counts.get(key, 0) for key, _label, _shape in rows] + [1])
    parts, summary = [], []
    for i, (key, name, shape) in enumerate(rows):
        count, y = counts.get(key, 0), 4 + i * (row + 6)
        summary.append(f"{name} {formats.number(count, language)}")
        parts.append(_group(
            _("%(state)s: %(count)s", state=name, count=formats.number(count, language)),
            _marker(shape, 12, y + row / 2), _text(label_right, y + row / 2 + 4, _fit(name, 30), anchor="end"),
            _rect(bar_left, y + 6, max(bar_width * count / largest, 2), row - 12, "stage"),
            _text(count_right, y + row / 2 + 4, formats.number(count, language), "count", anchor="end"),
        ))
    label = _("Milestones by punctuality: %(summary)s", summary=_list(summary, language))
    return _svg(width, 4 + len(rows) * (row + 6), label, Markup("").join(parts), "punctuality")
