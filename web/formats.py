"""Numbers, money, dates and times as staff read them: Chinese conventions, Asia/Shanghai time.

Money is an exact Decimal in CNY (yuan, two decimals), entered in 元 or 万元 and never
passed through a float.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal

from domain.audit import OFFICE_TZ
from web.i18n import BABEL_LOCALE

WAN = Decimal(10000)
CENT = Decimal("0.01")
UNITS = ("yuan", "wan")
"""The units a money field accepts: 元 and 万元 (ten thousand yuan)."""


def number(value: int | Decimal, language: str, decimals: int | None = None) -> str:
    if decimals is not None:
        value = Decimal(value).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
        pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
        return format_decimal(value, format=pattern, locale=BABEL_LOCALE[language])
    return format_decimal(value, locale=BABEL_LOCALE[language])


def yuan(value: Decimal | None, language: str) -> str:
    """The exact amount: "12,345,678.90 元" / "CNY 12,345,678.90"."""
    if value is None:
        return "–"
    text = number(value, language, 2)
    return f"{text} 元" if language == "zh" else f"CNY {text}"


def wan(value: Decimal | None, language: str) -> str:
    """An amount in 万元 as reports give it: "1,234.57 万元" / "CNY 12.35 m"."""
    if value is None:
        return "–"
    if language == "zh":
        return f"{number(value / WAN, language, 2)} 万元"
    return f"CNY {number(value / Decimal(1_000_000), language, 2)} m"


def parse_money(text: str, unit: str) -> Decimal:
    """An amount typed by a person, in 元 or 万元, as exact yuan. Raises ValueError with a reason.

    Separators (`,` `，` spaces) are allowed; at most two decimals once in yuan, so
    1.234567 万元 is exactly 12,345.67 元 and 1.2345678 万元 is refused, not rounded."""
    cleaned = text.strip().replace(",", "").replace("，", "").replace(" ", "").replace("\u00a0", "")
    cleaned = cleaned.translate(str.maketrans("０１２３４５６７８９．", "0123456789."))
    if not cleaned:
        raise ValueError("missing")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError("not_a_number") from None
    if not amount.is_finite():
        raise ValueError("not_a_number")
    if unit == "wan":
        amount *= WAN
    elif unit != "yuan":
        raise ValueError("unit")
    if amount != amount.quantize(CENT):
        raise ValueError("too_precise")
    return amount.quantize(CENT)


def money_input(value: Decimal | None) -> str:
    """An amount put back into a form field in 元, without exponent or separators."""
    return "" if value is None else f"{value:.2f}"


def day(value: date | str | None, language: str, style: str = "medium") -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        value = date.fromisoformat(value)
    if isinstance(value, datetime):
        value = value.astimezone(OFFICE_TZ).date()
    return format_date(value, format=style, locale=BABEL_LOCALE[language])


def moment(value: datetime | str | None, language: str) -> str:
    """A point in time in office time (Asia/Shanghai), to the minute."""
    if value is None:
        return "–"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    local = value.astimezone(OFFICE_TZ)
    pattern = "yyyy年M月d日 HH:mm" if language == "zh" else "d MMM yyyy HH:mm"
    return format_datetime(local, format=pattern, locale=BABEL_LOCALE[language])


def office_date(value: datetime) -> date:
    return value.astimezone(OFFICE_TZ).date()
