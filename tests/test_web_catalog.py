"""Every string the pages show is in the Chinese catalog: extracted from the templates and the
web code the way `pybabel extract` would (babel.cfg), then looked up in the merged catalog."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from web.i18n import catalog, catalog_files, gettext_for

ROOT = Path(__file__).resolve().parent.parent
METHODS = [("web/templates/**.html", "jinja2"), ("web/**.py", "python")]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def marked_strings() -> dict[str, str]:
    """Every marked message id → where it was first found."""
    found: dict[str, str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            str(ROOT), METHODS, keywords=KEYWORDS, options_map={"web/templates/**.html": {"trim_blocks": "true",
                                                                                          "lstrip_blocks": "true"}}):
        ids = message if isinstance(message, tuple) else (message,)
        for text in ids:
            if text:
                found.setdefault(text, f"{filename}:{lineno}")
    return found


def test_the_extractor_finds_the_pages_strings():
    found = marked_strings()
    assert "Sign in" in found and "Dashboard" in found and "This field is required." in found


def test_every_marked_string_has_a_chinese_translation():
    zh = catalog("zh")
    missing = sorted(f"{where}: {text!r}" for text, where in marked_strings().items()
                     if text not in zh or not zh[text].string)
    assert not missing, "untranslated:\n" + "\n".join(missing)


def test_an_id_translated_in_two_areas_is_translated_alike():
    """Areas may repeat a string, but a page must not say it differently from another."""
    seen: dict[str, tuple[str, str]] = {}
    differing = []
    for po in catalog_files("zh"):
        with po.open("rb") as f:
            for message in read_po(f):
                if not message.id:
                    continue
                first = seen.setdefault(message.id, (po.name, message.string))
                if first[1] != message.string:
                    differing.append(f"{message.id!r}: {first[0]} {first[1]!r}, {po.name} {message.string!r}")
    assert not differing, "translated differently:\n" + "\n".join(differing)


def test_placeholders_survive_translation():
    """A translation that drops or renames a %(name)s would fail at run time on that page."""
    zh = catalog("zh")
    broken = []
    for text in marked_strings():
        message = zh.get(text)
        if message is None or not message.string:
            continue
        names = sorted(set(_names(text)))
        if sorted(set(_names(message.string))) != names:
            broken.append(text)
    assert not broken, "placeholders differ:\n" + "\n".join(broken)


def _names(text: str) -> list[str]:
    import re

    return re.findall(r"%\((\w+)\)s", text)


def test_a_translation_is_used_and_filled():
    assert gettext_for("zh")("Not found: %(reason)s", reason="x") == "未找到：x"
    assert gettext_for("en")("Not found: %(reason)s", reason="x") == "Not found: x"
