"""Languages: Simplified Chinese by default, English per user; every string in a gettext catalog.

Message ids are English. The Chinese catalog is split into one `.po` file per area of the
site (web/locale/zh/LC_MESSAGES/<area>.po) so that work on one page does not collide with
work on another; they are merged and compiled in memory when first needed, so there is no
build step and no compiled `.mo` file in git. `tests/test_web_catalog.py` extracts every
marked string from the templates and the Python code and fails on any without a translation.
"""

from __future__ import annotations

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
BABEL_LOCALE = {"zh": "zh_Hans_CN", "en": "en_GB"}
"""The Babel locale behind each language: number and date conventions (en_GB: day before month)."""
HTML_LANG = {"zh": "zh-CN", "en": "en"}
LOCALE_DIR = Path(__file__).parent / "locale"


def language_or_default(value: str | None) -> str:
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


def catalog_files(language: str) -> list[Path]:
    """The area catalogs of a language, `common.po` first. The same id in two areas must have
    the same translation (tests/test_web_catalog.py checks it), so the order only matters there."""
    files = sorted((LOCALE_DIR / language / "LC_MESSAGES").glob("*.po"))
    return sorted(files, key=lambda po: po.name != "common.po")


def catalog(language: str) -> Catalog:
    """Every area's catalog of one language, merged."""
    merged = Catalog(locale=BABEL_LOCALE[language], domain="messages")
    for po in catalog_files(language):
        with po.open("rb") as f:
            for message in read_po(f, locale=BABEL_LOCALE[language]):
                if message.id and message.string and not message.fuzzy and message.id not in merged:
                    merged.add(message.id, message.string)
    return merged


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled translations of a language; English needs none (ids are English)."""
    if language == "en":
        return gettext.NullTranslations()
    buffer = BytesIO()
    write_mo(buffer, catalog(language))
    buffer.seek(0)
    return Translations(fp=buffer, domain="messages")


def gettext_for(language: str):  # noqa: ANN201  (a callable like gettext.gettext, with %-formatting)
    """`_("Signed %(title)s", title=t)`: translate, then fill the named fields."""
    translate = translations(language).gettext

    def _(message: str, **values: object) -> str:
        text = translate(message)
        return text % values if values else text

    return _


def N_(message: str) -> str:  # noqa: N802  (the gettext convention for "translate later")
    """Mark a string for the catalog where it is defined; it is translated where it is shown."""
    return message
