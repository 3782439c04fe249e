"""Idempotency-Key for POST and PATCH: a retried request is answered from the stored answer.

Pure ASGI middleware, so it sees the exact body bytes and the exact answer. The key
also becomes the workflow request id (and Update id): even if this process dies after
the workflow accepted the action but before the answer was stored, the retry does
not apply the action twice.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import COOKIE, acting_user, bearer_token
from api.uploads import is_upload
from db import idempotency

MAX_KEY_LENGTH = 200


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["request_id"] = uuid.uuid4().hex  # every request has one; audit events carry it
        content_type = next((v for k, v in scope["headers"] if k.lower() == b"content-type"), None)
        if scope["method"] not in ("POST", "PATCH") or is_upload(scope["method"], scope["path"], content_type):
            # An upload is not read whole to fingerprint it: it is idempotent by its content instead.
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = headers.get("idempotency-key")
        if key is None or not _has_credential(scope, headers):
            await self.app(scope, receive, send)
            return
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            await _json(send, 422, {"detail": [{"loc": ["header", "Idempotency-Key"], "type": "value_error",
                                                "msg": f"must be 1 to {MAX_KEY_LENGTH} printable characters"}]})
            return
        services = scope["app"].state.services
        pool = services.pool
        # The same authentication as the route's (a token, or a session cookie with its CSRF proof);
        # `Request` over this scope reads headers only, and keeps the answer for the route in scope state.
        user = await acting_user(Request(scope), services)
        if user is None:  # let the route answer 401 or 403, without using up the key
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        fingerprint = hashlib.sha256(
            b"\n".join([scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body])
        ).digest()
        async with pool.acquire() as conn:
            outcome = await idempotency.claim(conn, user.id, key, fingerprint)
        if outcome.mismatch:
            await _json(send, 422, {"detail": [{"loc": ["header", "Idempotency-Key"], "type": "value_error",
                                                "msg": "this key was already used for a different request"}]})
            return
        if outcome.in_progress:
            await _json(send, 409, {"detail": "a request with this Idempotency-Key is still in progress"})
            return
        if outcome.answer is not None:
            await _send(send, outcome.answer.status_code, outcome.answer.body, outcome.answer.content_type,
                        replayed=True)
            return
        state["request_id"] = "idem-" + hashlib.sha256(f"{user.id}\n{key}".encode()).hexdigest()[:32]
        try:
            answer = await _run_capturing(self.app, scope, body, send)
        except BaseException:
            async with pool.acquire() as conn:
                await idempotency.release(conn, user.id, key)
            raise
        async with pool.acquire() as conn:
            if answer.status_code < 500:
                await idempotency.store(conn, user.id, key, answer)
            else:
                await idempotency.release(conn, user.id, key)


def _has_credential(scope: Scope, headers: dict[str, str]) -> bool:
    return bearer_token(headers.get("authorization")) is not None or COOKIE in Request(scope).cookies


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _run_capturing(app: ASGIApp, scope: Scope, body: bytes, send: Send) -> idempotency.StoredAnswer:
    """Run the app on the buffered body, pass its answer through and keep a copy."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    status, content_type, parts = 500, "application/json", []

    async def capture(message: Message) -> None:
        nonlocal status, content_type
        if message["type"] == "http.response.start":
            status = message["status"]
            for k, v in message.get("headers", []):
                if k.lower() == b"content-type":
                    content_type = v.decode("latin-1")
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))
        await send(message)

    await app(scope, replay, capture)
    if scope.get("state", {}).get(WITHHOLD_REPLAY):
        # The answer holds a secret the database must never keep in clear (a calendar-feed URL,
        # of which only a hash is stored): a replay says what happened, without it.
        return idempotency.StoredAnswer(status, SECRET_WITHHELD, "application/json")
    return idempotency.StoredAnswer(status, b"".join(parts), content_type)


WITHHOLD_REPLAY = "withhold_replay"
"""Set on `request.state` by a handler whose answer must not be stored for replay."""

SECRET_WITHHELD = json.dumps({
    "detail": "this request was applied; its answer held a secret that is shown only once and is not stored"
}).encode()


async def _send(send: Send, status: int, body: bytes, content_type: str, replayed: bool = False) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, payload: Any) -> None:
    await _send(send, status, json.dumps(payload).encode(), "application/json")
