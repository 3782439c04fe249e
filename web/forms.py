"""Forms that respect the user: errors next to the field in their language, typed values kept,
Post/Redirect/Get with a message saying what happened, and one effect per form however often
it is submitted.

Once-only: every rendered form carries a fresh `form_key`. The first post of a key claims it
(the same `idempotency_keys` table the API's Idempotency-Key uses, under "form:<key>") and
its action runs with a request id derived from it, so even a post retried after a crash is
applied once by the workflow. A second post of the same key (a double click, a reload of a
POST, the back button) waits for the first and is sent to the same place. A post whose
action was refused frees its key; the page that comes back carries a new one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from api.errors import ApiError
from db import idempotency
from domain.errors import DomainError
from web.i18n import N_
from web.session import Viewer, services_of

FLASH_COOKIE = "accord_flash"
_WAIT_FOR_FIRST = 15.0  # seconds a repeated post waits for the first one to finish


class FormErrors(Exception):
    """What to show on the form: a message per field, and one for the whole form."""

    def __init__(self, fields: Mapping[str, str] | None = None, general: str | None = None,
                 stale: bool = False, status: int = 422) -> None:
        super().__init__(general or "; ".join(f"{k}: {v}" for k, v in (fields or {}).items()))
        self.fields, self.general, self.stale = dict(fields or {}), general, stale
        self.status = 412 if stale else status


# ---------------------------------------------------------------- messages in the user's language

# Pydantic's error types, as a person would say them; the context fills the blanks.
VALIDATION_MESSAGES = {
    "missing": N_("This field is required."),
    "string_too_short": N_("This field is required."),
    "string_too_long": N_("At most %(max_length)s characters."),
    "string_pattern_mismatch": N_("Letters, digits, dots, dashes and underscores only."),
    "greater_than": N_("Must be more than %(gt)s."),
    "greater_than_equal": N_("Must be at least %(ge)s."),
    "less_than_equal": N_("Must be at most %(le)s."),
    "date_from_datetime_parsing": N_("Enter a date as YYYY-MM-DD."),
    "date_parsing": N_("Enter a date as YYYY-MM-DD."),
    "date_type": N_("Enter a date as YYYY-MM-DD."),
    "decimal_parsing": N_("Enter an amount, e.g. 1,250.50."),
    "decimal_max_places": N_("At most two decimals (fen)."),
    "decimal_max_digits": N_("This amount is too large."),
    "enum": N_("Choose one of the options."),
    "literal_error": N_("Choose one of the options."),
    "int_parsing": N_("Enter a whole number."),
    "too_short": N_("Add at least %(min_length)s."),
}
MONEY_MESSAGES = {
    "missing": N_("This field is required."),
    "not_a_number": N_("Enter an amount, e.g. 1,250.50."),
    "too_precise": N_("At most two decimals in yuan (fen)."),
    "unit": N_("Choose 元 or 万元."),
}


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """A pydantic location as the form names its input: ("parties", 0, "signatory") → parties-0-signatory."""
    parts = [str(p) for p in loc if p != "body"]
    return "-".join(parts) or "__all__"


def validation_errors(error: ValidationError, _: Callable[..., str], prefix: str = "") -> FormErrors:
    """Pydantic's errors, one per field; `prefix` names a row of a repeated group ("parties-1-")."""
    fields: dict[str, str] = {}
    for e in error.errors():
        name = prefix + field_name(e["loc"])
        kind = "missing" if e.get("input", "") is None else e["type"]  # an empty field arrives as None
        template = VALIDATION_MESSAGES.get(kind)
        context = {k: v for k, v in (e.get("ctx") or {}).items() if isinstance(v, (int, float, str))}
        try:
            fields.setdefault(name, _(template, **context) if template else e["msg"])
        except (KeyError, ValueError):
            fields.setdefault(name, _(template) if template else e["msg"])
    general = fields.pop(prefix + "__all__", None)  # a rule across fields (a model validator)
    return FormErrors(fields, _("Please correct this: %(reason)s", reason=general) if general else None)


def refusal(error: ApiError | DomainError, _: Callable[..., str]) -> FormErrors:
    """An answer of the actions (api/writes.py) as the form shows it."""
    status = error.status if isinstance(error, ApiError) else {"Forbidden": 403, "NotFound": 404}.get(error.kind, 409)
    detail = error.detail if isinstance(error, ApiError) else error.reason
    if status == 422 and isinstance(detail, list):
        fields = {}
        for item in detail:
            name = field_name(item.get("loc", []))
            fields.setdefault(name, item.get("msg", ""))
        general = fields.pop("__all__", None)
        return FormErrors(fields, _("Please correct this: %(reason)s", reason=general) if general else None, status=422)
    if status == 412:
        return FormErrors(general=_("A colleague changed this record while you were editing. The page now shows "
                                    "the current values; check them and submit again."), stale=True)
    if status == 403:
        return FormErrors(general=_("You may not do this: %(reason)s", reason=detail), status=403)
    if status == 404:
        return FormErrors(general=_("Not found: %(reason)s", reason=detail), status=404)
    if status == 429:
        return FormErrors(general=_("Too many actions at once on this record; nothing was changed. Try again."),
                          status=429)
    if status >= 500:
        return FormErrors(general=_("The service is unavailable right now; nothing was changed. Try again."),
                          status=503)
    return FormErrors(general=_("This cannot be done now: %(reason)s", reason=detail), status=status)


# ---------------------------------------------------------------- once-only submission


def request_id_for(who: Viewer, form_key: str) -> str:
    """The workflow request id of a form's action: the same for every post of the same form."""
    return "form-" + hashlib.sha256(f"{who.user.id}\n{form_key}".encode()).hexdigest()[:32]


async def run_once(request: Request, who: Viewer, form_key: str | None,
                   action: Callable[[str], Awaitable[str]]) -> str:
    """Run `action(request_id)` once for this form; answer where to go next (its result).

    FormErrors from the action free the key and propagate (the form is shown again)."""
    services = services_of(request)
    key = f"form:{form_key}" if form_key and len(form_key) <= 64 and form_key.isalnum() else None
    if key is None:  # a page from before this mechanism, or a hand-made post: no dedupe key
        return await action("form-" + uuid.uuid4().hex)
    fingerprint = hashlib.sha256(request.url.path.encode()).digest()
    deadline = asyncio.get_running_loop().time() + _WAIT_FOR_FIRST
    while True:
        async with services.pool.acquire() as conn:
            claim = await idempotency.claim(conn, who.user.id, key, fingerprint)
        if claim.answer is not None:
            return claim.answer.body.decode()
        if claim.mismatch:  # the same key posted to another form: treat as a new form
            return await action("form-" + uuid.uuid4().hex)
        if claim.ours:
            break
        if asyncio.get_running_loop().time() > deadline:
            raise FormErrors(general=who._("This form is still being processed; reload the page in a moment."))
        await asyncio.sleep(0.1)
    try:
        location = await action(request_id_for(who, form_key))
    except BaseException:
        async with services.pool.acquire() as conn:
            await idempotency.release(conn, who.user.id, key)
        raise
    async with services.pool.acquire() as conn:
        await idempotency.store(conn, who.user.id, key, idempotency.StoredAnswer(303, location.encode(), "text/plain"))
    return location


# ---------------------------------------------------------------- Post/Redirect/Get with a message


def _sign(payload: bytes, who: Viewer) -> str:
    return hmac.new(who.csrf_token.encode(), payload, hashlib.sha256).hexdigest()[:32]


def redirect(location: str, who: Viewer | None = None, message: str | None = None) -> RedirectResponse:
    """303 to `location` (Post/Redirect/Get), carrying a success message for the next page."""
    response = RedirectResponse(location, status_code=303)
    if message and who is not None:
        payload = base64.urlsafe_b64encode(json.dumps({"m": message}, ensure_ascii=False).encode())
        response.set_cookie(FLASH_COOKIE, f"{payload.decode()}.{_sign(payload, who)}", max_age=120, path="/",
                            httponly=True, samesite="Lax")
    return response


def flash_message(request: Request, who: Viewer) -> str | None:
    """The message the last redirect left for this session (signed with its CSRF token), if any."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or "." not in raw or len(raw) > 4000:
        return None
    payload, signature = raw.rsplit(".", 1)
    if not hmac.compare_digest(signature, _sign(payload.encode(), who)):
        return None
    try:
        return str(json.loads(base64.urlsafe_b64decode(payload.encode()))["m"])
    except (ValueError, KeyError, TypeError):
        return None
