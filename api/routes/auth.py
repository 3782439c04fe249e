"""Sign-in with a password, server-side sessions, sign-out, and changing one's password.

A failed sign-in answers the same 401, body and all, whatever failed (unknown user,
wrong password, disabled account, no password set), after the same argon2 work: the
answer never tells which usernames exist. Too many failures answer 429 with
Retry-After before any password is looked at (api/auth.py, `begin_attempt`).

Every sign-in, failure, refusal, lockout, sign-out and password change is an audit
event. None records a password, a hash, a session id, a CSRF token or a token secret:
a session is named by `ref`, a short prefix of its id's SHA-256.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from api.audit_log import event_for, with_origin
from api.auth import (
    COOKIE,
    AuthConfig,
    LoginRefusal,
    account_failures,
    actor_for,
    auth_config,
    begin_attempt,
    clear_session_cookie,
    credential,
    idle_deadline,
    origin_refusal,
    set_session_cookie,
)
from api.errors import ApiError
from api.idempotency import WITHHOLD_REPLAY
from api.schemas import Body
from api.services import ActorDep, RequestIdDep, Services, ServicesDep
from db import passwords, sessions
from db.audit_chain import append
from db.users import User, user_by_id
from domain.audit import Actor
from domain.passwords import problems

router = APIRouter(tags=["sign-in"])

LOGIN_FAILED = "sign-in failed: wrong username or password"
TOO_MANY = "too many failed sign-ins; wait before trying again (see Retry-After)"
_MAX_NAME = 200


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL bytes")
    return value


Username = Annotated[str, StringConstraints(min_length=1, max_length=_MAX_NAME), AfterValidator(_no_nul)]
# Bounded only against absurd bodies: the policy (domain/passwords.py) speaks about lengths.
PasswordText = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class LoginIn(Body):
    username: Username
    password: PasswordText


class SessionUser(BaseModel):
    id: str
    username: str
    display_name: str
    roles: list[str]
    department: str | None


class LoginOut(BaseModel):
    user: SessionUser
    csrf_token: str = Field(description="Send it as X-CSRF-Token with every write of this session.")
    expires_at: datetime = Field(description="The absolute end of the session; it ends sooner when idle.")


class SessionView(BaseModel):
    id: str = Field(description="A short prefix of the SHA-256 of the session id: names it, cannot be used as it.")
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime = Field(description="Absolute end")
    idle_expires_at: datetime = Field(description="End if no request comes before")
    source_ip: str | None
    user_agent: str | None


class SessionState(BaseModel):
    auth_method: str
    user: SessionUser
    csrf_token: str | None = Field(description="This session's CSRF token (none for a bearer token)")
    current: SessionView | None = Field(description="This session (none for a bearer token)")
    others: list[SessionView] = Field(description="The user's other live sessions")


class SignedOut(BaseModel):
    revoked: int = Field(description="How many live sessions ended")


class PasswordChangeIn(Body):
    current_password: PasswordText
    new_password: Annotated[str, StringConstraints(max_length=4096)]


class PasswordChanged(BaseModel):
    password_changed_at: datetime
    other_sessions_revoked: int


def session_user(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "display_name": user.display_name,
            "roles": list(user.all_roles), "department": user.department}


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _too_many(refusal: LoginRefusal) -> HTTPException:
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail=TOO_MANY,
                         headers={"Retry-After": str(refusal.retry_after)})


async def _record(conn: asyncpg.Connection, actor: Actor, request_id: str, action: str, entity_id: str,
                  after: dict[str, Any], outcome: str = "succeeded", error: str | None = None) -> None:
    await append(conn, event_for(actor, request_id=request_id, action=action, entity_type="user",
                                 entity_id=entity_id, after=after, outcome=outcome, error=error))


@router.post("/auth/login", response_model=LoginOut)
async def login(body: LoginIn, request: Request, response: Response, services: ServicesDep,
                request_id: RequestIdDep) -> dict:
    """Sign in with a password: sets the `accord_session` cookie (HttpOnly, SameSite=Lax, Secure over
    HTTPS) and answers the CSRF token every write of the session must send as X-CSRF-Token.

    Any failure is the same 401. Repeated failures answer 429 with Retry-After: per account, waits
    that double from the 5th failure within 15 minutes and a 15-minute lockout from the 10th (a
    correct password is refused too meanwhile); per source address, from the 50th."""
    setattr(request.state, WITHHOLD_REPLAY, True)  # the answer holds the CSRF token: never stored
    response.headers["Cache-Control"] = "no-store"
    config, now, ip = auth_config(services), services.clock(), _client_ip(request)
    # Until the password is checked nobody is known: events (ours and the refused-attempt record of
    # AttemptAuditMiddleware) name the username tried.
    attempt = with_origin(Actor(user_id="anonymous", name=body.username[:_MAX_NAME], role="none",
                                auth_method="password"), request)
    request.state.actor = attempt
    refused = origin_refusal(request, services)  # login CSRF: a foreign page signing the browser in
    if refused:
        raise ApiError(status.HTTP_403_FORBIDDEN, refused)
    presented = request.cookies.get(COOKIE)
    async with services.pool.acquire() as conn:
        # Session fixation: whatever session the browser held ends here; the sign-in makes a new one.
        replaced = bool(presented) and await sessions.revoke(conn, sessions.hash_session_id(presented), now)
    started = await begin_attempt(services.pool, body.username, ip, now, config)
    async with services.pool.acquire() as conn:
        if isinstance(started, LoginRefusal):
            async with conn.transaction():
                await _record(conn, attempt, request_id, "auth.login_refused", "-",
                              {"reason": started.reason, "retry_after_seconds": started.retry_after},
                              outcome="refused", error=TOO_MANY)
            raise _too_many(started)
        account = await passwords.login_record(conn, body.username)
    # The same argon2 work whether or not the account exists or has a password.
    stored = account["password_hash"] if account else None
    correct = await passwords.verify_in_thread(stored, body.password)
    user = None
    if correct and account["disabled_at"] is None:
        async with services.pool.acquire() as conn:
            user = await user_by_id(conn, account["id"])
    if user is None:
        reason = ("unknown_user" if account is None else "no_password" if stored is None
                  else "disabled" if account["disabled_at"] is not None else "wrong_password")
        await _login_failed(services, config, attempt, request_id, body.username, now, account, reason)
        raise ApiError(status.HTTP_401_UNAUTHORIZED, LOGIN_FAILED)

    rehashed = passwords.needs_rehash(stored)
    new_hash = await passwords.hash_in_thread(body.password) if rehashed else None
    actor = actor_for(user, "password", request)
    request.state.actor = actor
    async with services.pool.acquire() as conn, conn.transaction():
        if new_hash is not None:
            await passwords.replace_hash(conn, user.id, stored, new_hash)
        await passwords.forget_failure(conn, started)
        await passwords.clear_failures(conn, body.username)
        session_id, id_hash, csrf_token = await sessions.create(
            conn, user.id, now, now + config.session_absolute, ip, attempt.user_agent)
        await _record(conn, actor, request_id, "auth.login", user.id, {
            "session": sessions.ref(id_hash), "expires_at": (now + config.session_absolute).isoformat(),
            "password_rehashed": rehashed, "previous_session_revoked": replaced})
    set_session_cookie(response, request, session_id, config)
    return {"user": session_user(user), "csrf_token": csrf_token, "expires_at": now + config.session_absolute}


async def _login_failed(services: Services, config: AuthConfig, attempt: Actor, request_id: str, username: str,
                        now: datetime, account: asyncpg.Record | None, reason: str) -> None:
    """Say in the audit trail why it failed (already counted, by `begin_attempt`) and whether that
    locked the account."""
    async with services.pool.acquire() as conn, conn.transaction():
        failures, _ = await account_failures(conn, username, now, config)
        entity = account["id"] if account else "-"
        await _record(conn, attempt, request_id, "auth.login_failed", entity,
                      {"reason": reason, "recent_failures": failures}, outcome="refused", error=LOGIN_FAILED)
        if failures == config.login_lockout_after:
            await _record(conn, attempt, request_id, "auth.locked_out", entity, {
                "failures": failures, "locked_until": (now + config.login_lockout).isoformat()},
                outcome="refused", error=TOO_MANY)


@router.post("/auth/logout", response_model=SignedOut)
async def logout(request: Request, response: Response, services: ServicesDep, actor: ActorDep,
                 request_id: RequestIdDep) -> dict:
    """End this session (its cookie is cleared). Only for a session: revoke a token with DELETE /me/tokens/{id}."""
    found = await credential(request, services)
    if found is None or found.session is None:
        raise ApiError(status.HTTP_400_BAD_REQUEST,
                       "this request is authenticated by an API token, not a session; "
                       "revoke a token with DELETE /api/v1/me/tokens/{id}")
    now = services.clock()
    async with services.pool.acquire() as conn, conn.transaction():
        revoked = await sessions.revoke(conn, found.session.id_hash, now)
        await _record(conn, actor, request_id, "auth.logout", actor.user_id, {"session": found.session.ref})
    clear_session_cookie(response, request, auth_config(services))
    return {"revoked": int(revoked)}


@router.post("/auth/logout-all", response_model=SignedOut)
async def logout_all(request: Request, response: Response, services: ServicesDep, actor: ActorDep,
                     request_id: RequestIdDep) -> dict:
    """End every session of the caller, this one included ("sign out everywhere"). API tokens stay."""
    found = await credential(request, services)
    now = services.clock()
    async with services.pool.acquire() as conn, conn.transaction():
        revoked = await sessions.revoke_all(conn, actor.user_id, now)
        await _record(conn, actor, request_id, "auth.logout_all", actor.user_id, {"sessions_revoked": revoked})
    if found is not None and found.session is not None:
        clear_session_cookie(response, request, auth_config(services))
    return {"revoked": revoked}


def _view(session: Mapping[str, Any], config: AuthConfig) -> dict[str, Any]:
    """A session as answered: a row of `sessions.active`, or the fields of the current one."""
    return {"id": sessions.ref(session["id_hash"]), "created_at": session["created_at"],
            "last_seen_at": session["last_seen_at"], "expires_at": session["expires_at"],
            "idle_expires_at": idle_deadline(session["last_seen_at"], session["expires_at"], config),
            "source_ip": session["source_ip"], "user_agent": session["user_agent"]}


@router.get("/auth/session", response_model=SessionState)
async def describe_session(request: Request, response: Response, services: ServicesDep,
                           actor: ActorDep) -> dict:
    """This session (created, last seen, when it ends) and the caller's other live sessions.
    Also answers this session's CSRF token, for a page that was reloaded."""
    response.headers["Cache-Control"] = "no-store"
    found = await credential(request, services)
    assert found is not None  # ActorDep answered 401 otherwise
    config, now = auth_config(services), services.clock()
    async with services.pool.acquire() as conn:
        rows = await sessions.active(conn, actor.user_id, now, now - config.session_idle)
    current = found.session
    views = {sessions.ref(r["id_hash"]): _view(r, config) for r in rows}
    mine = None
    if current is not None:  # as this request saw it (its last_seen_at may have just moved)
        views.pop(current.ref, None)
        mine = _view({f.name: getattr(current, f.name) for f in fields(current)}, config)
    return {"auth_method": found.method, "user": session_user(found.user),
            "csrf_token": current.csrf_token if current else None, "current": mine, "others": list(views.values())}


@router.put("/me/password", response_model=PasswordChanged)
async def change_password(body: PasswordChangeIn, request: Request, services: ServicesDep, actor: ActorDep,
                          request_id: RequestIdDep) -> dict:
    """Change the caller's password: the new one must meet the policy (422 per reason on
    `new_password`); every other session of the caller ends. A wrong current password is a 403
    and counts as a failed sign-in (so this cannot be used to guess it)."""
    config, now, ip = auth_config(services), services.clock(), _client_ip(request)
    async with services.pool.acquire() as conn:
        account = await conn.fetchrow("SELECT username, password_hash FROM users WHERE id = $1", actor.user_id)
    username, stored = account["username"], account["password_hash"]
    reasons = problems(body.new_password, username)
    if body.new_password == body.current_password:
        reasons.append("must differ from the current password")
    if reasons:
        raise ApiError(422, [{"loc": ["body", "new_password"], "msg": r, "type": "value_error"} for r in reasons])
    if stored is None:
        raise ApiError(status.HTTP_409_CONFLICT, "this account has no password yet; an administrator sets the "
                                                 "first one with `accord user set-password`")
    started = await begin_attempt(services.pool, username, ip, now, config)
    if isinstance(started, LoginRefusal):
        raise _too_many(started)
    if not await passwords.verify_in_thread(stored, body.current_password):
        raise ApiError(status.HTTP_403_FORBIDDEN, "the current password is wrong")  # counted as a failure
    new_hash = await passwords.hash_in_thread(body.new_password)
    found = await credential(request, services)
    keep = found.session.id_hash if found and found.session else None
    async with services.pool.acquire() as conn, conn.transaction():
        await passwords.store_hash(conn, actor.user_id, new_hash, now)
        await passwords.forget_failure(conn, started)
        await passwords.clear_failures(conn, username)
        revoked = await sessions.revoke_all(conn, actor.user_id, now, keep=keep)
        await _record(conn, actor, request_id, "auth.password_changed", actor.user_id,
                      {"other_sessions_revoked": revoked})
    return {"password_changed_at": now, "other_sessions_revoked": revoked}
