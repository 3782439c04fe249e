"""Jinja2 templates, one environment per language (gettext installed in it), and the page filters."""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from web import formats
from web.i18n import HTML_LANG, translations


@cache
def environment(language: str) -> Environment:
    env = Environment(
        loader=PackageLoader("web", "templates"),
        autoescape=select_autoescape(["html", "svg"], default_for_string=True),
        undefined=StrictUndefined,  # a misspelt variable fails the page (and its test), not renders blank
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    # Globals, unlike render values, are seen by imported macros (_forms.html) too.
    env.globals.update(language=language, html_lang=HTML_LANG[language], form_key=lambda: uuid.uuid4().hex)
    env.filters.update(
        yuan=lambda v: formats.yuan(v, language),
        wan=lambda v: formats.wan(v, language),
        number=lambda v, d=None: formats.number(v, language, d),
        day=lambda v, style="medium": formats.day(v, language, style),
        moment=lambda v: formats.moment(v, language),
        money_input=formats.money_input,
    )
    return env


def render_template(language: str, name: str, values: dict[str, Any]) -> str:
    return environment(language).get_template(name).render(values)
