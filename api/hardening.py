"""Web hardening: security headers on every answer, and request limits checked before any real work.

Both are pure ASGI middlewares. `add_security_headers` wraps the whole application, even
Starlette's own error handling, so an unhandled 500 carries the headers too. The limits
middleware sits inside the audit middleware (which must see every refusal) and outside
the idempotency middleware, so an oversized or absurdly nested body is refused before a
token is looked up or an idempotency key is claimed.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable
from itertools import accumulate
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from api.uploads import MULTIPART_SLACK, is_upload

# ---------------------------------------------------------------- security headers

STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

# The interactive API pages (development only) load Swagger UI or ReDoc from the jsdelivr CDN and
# start them with an inline script (Swagger UI) or style (ReDoc); these policies allow exactly
# that, for those paths only. ReDoc also runs its search in a worker built from a blob: URL and
# loads Google Fonts; both pages show FastAPI's favicon.
_CDN = "https://cdn.jsdelivr.net"
_FAVICON = "https://fastapi.tiangolo.com"
_TAIL = "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
SWAGGER_CSP = (
    f"default-src 'self'; script-src 'self' {_CDN} 'unsafe-inline'; style-src 'self' {_CDN} 'unsafe-inline'; "
    f"img-src 'self' data: {_FAVICON}; {_TAIL}"
)
SWAGGER_REDIRECT_CSP = f"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self'; img-src 'self'; {_TAIL}"
REDOC_CSP = (
    f"default-src 'self'; script-src 'self' {_CDN}; style-src 'self' 'unsafe-inline' https://fonts.googleapis.com; "
    f"font-src 'self' https://fonts.gstatic.com; img-src 'self' data: {_FAVICON}; worker-src 'self' blob:; {_TAIL}"
)

HSTS = "max-age=31536000; includeSubDomains"

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)


def docs_policies(docs_url: str | None, redoc_url: str | None, oauth2_redirect_url: str | None) -> dict[str, str]:
    """The relaxed Content-Security-Policy of each interactive API page the app serves."""
    policies = {}
    if docs_url:
        policies[docs_url] = SWAGGER_CSP
        if oauth2_redirect_url:
            policies[oauth2_redirect_url] = SWAGGER_REDIRECT_CSP
    if redoc_url:
        policies[redoc_url] = REDOC_CSP
    return policies


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP answer (they replace any a route set itself).

    Strict-Transport-Security only when the request came over HTTPS or the public URL is https:
    a browser that reached a plain-HTTP development server must not be told to insist on HTTPS.
    """

    def __init__(self, app: ASGIApp, public_url: Callable[[Scope], str], csp_by_path: dict[str, str]) -> None:
        self.app = app
        self.public_url = public_url
        self.csp_by_path = csp_by_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = self.csp_by_path.get(scope["path"], STRICT_CSP)
        https = scope.get("scheme") == "https" or self.public_url(scope).lower().startswith("https:")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = csp
                for name, value in SECURITY_HEADERS:
                    headers[name] = value
                if https:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_security_headers(app: Any) -> None:
    """Wrap the app's whole middleware stack, Starlette's ServerErrorMiddleware included.

    Middlewares added with `add_middleware` run inside ServerErrorMiddleware, so the 500 it
    sends for an unhandled exception would go out bare; wrapping the built stack covers it.
    """
    build = app.build_middleware_stack
    policies = docs_policies(app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)

    def build_with_headers() -> ASGIApp:
        return SecurityHeadersMiddleware(build(), public_url=_public_url, csp_by_path=policies)

    app.build_middleware_stack = build_with_headers


def _services(scope: Scope) -> Any:
    app = scope.get("app")
    return getattr(getattr(app, "state", None), "services", None)


def _public_url(scope: Scope) -> str:
    return getattr(_services(scope), "public_url", "") or ""


# ---------------------------------------------------------------- request limits

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_JSON_DEPTH = 32
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# A JSON string, escapes included; possessive, so a long string never backtracks.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = [0] * 256
for _open in b"[{":
    _DEPTH_STEP[_open] = 1
for _close in b"]}":
    _DEPTH_STEP[_close] = -1


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text, without parsing (and without recursion).

    Strings are removed first, so brackets inside them do not count. Malformed JSON gets some
    number and is refused by the parser afterwards anyway.
    """
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)))


def _is_json(content_type: str | None) -> bool:
    """FastAPI parses a body as JSON when it has no content type or an application/*json one."""
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class RequestLimitsMiddleware:
    """413 for a body over `max_body_bytes`, 422 for JSON nested over `max_json_depth`.

    A Content-Length over the limit is refused without reading the body. A body without one
    (chunked) is counted while it arrives and refused as soon as it passes the limit. A body
    within the limit is read here, its JSON depth checked, and handed on unchanged. The limits
    are those of the app's Services (Settings.max_body_bytes, Settings.max_json_depth).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services = _services(scope)
        limit = getattr(services, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
        max_depth = getattr(services, "max_json_depth", DEFAULT_MAX_JSON_DEPTH)
        headers = _headers(scope["headers"], (b"content-length", b"content-type", b"transfer-encoding"))
        streamed = is_upload(scope["method"], scope["path"], headers.get(b"content-type"))
        if streamed:  # a document upload: streamed to the store by its route, never read whole here
            limit = getattr(services, "document_max_bytes", limit) + MULTIPART_SLACK
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await _refuse(scope, send, 400, "Content-Length must be a number of bytes", unread_body=True)
                return
            if int(length) > limit:
                await _refuse(scope, send, 413, _too_large(limit), unread_body=True)
                return
        if streamed or (scope["method"] not in _BODY_METHODS and length is None
                        and b"transfer-encoding" not in headers):
            await self.app(scope, receive, send)  # no body to check, or one its route counts itself
            return

        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nobody to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _refuse(scope, send, 413, _too_large(limit), unread_body=bool(message.get("more_body")))
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        content_type = headers.get(b"content-type")
        if body and _is_json(content_type.decode("latin-1") if content_type is not None else None):
            if json_depth(body) > max_depth:
                await _refuse(scope, send, 422, [{
                    "loc": ["body"], "type": "value_error",
                    "msg": f"the JSON body nests arrays and objects more than {max_depth} levels deep",
                }])
                return

        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # after the body: only a disconnect can come
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _headers(raw: Iterable[tuple[bytes, bytes]], names: tuple[bytes, ...]) -> dict[bytes, bytes]:
    found = {}
    for name, value in raw:
        name = name.lower()
        if name in names:
            found[name] = value.strip()
    return found


def _too_large(limit: int) -> str:
    mib = f" ({limit // (1024 * 1024)} MiB)" if limit % (1024 * 1024) == 0 else ""
    return f"the request body is larger than the limit of {limit} bytes{mib}"


async def _refuse(scope: Scope, send: Send, status: int, detail: Any, unread_body: bool = False) -> None:
    # The audit middleware records the refusal; give it a request id like every other answer.
    scope.setdefault("state", {}).setdefault("request_id", uuid.uuid4().hex)
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if unread_body:  # the rest of the body is never read: the connection cannot be reused
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
