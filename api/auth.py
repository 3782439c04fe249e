"""Who is calling, and may this request act for them.

Two credentials: `Authorization: Bearer <token>` (scripts and integrations) and the
`accord_session` cookie of a browser that signed in with a password (POST /auth/login).
A bearer header, when present, is the only credential looked at. The cookie is sent by
the browser on its own, so a cookie-authenticated write must also prove it comes from
our own pages (CSRF): the session's CSRF token in `X-CSRF-Token`, an `Origin` (when
sent) that is ours, and `Sec-Fetch-Site` (when sent) `same-origin` or `none`.

Sessions end after `session_idle` without a request and `session_absolute` after sign-in,
whichever comes first, by `Services.clock` (tests replace it). Sign-in is throttled per
account and per source address by counting recent `login_failures` rows, also by that clock.

`get_actor` (api/services.py) and the idempotency middleware both authenticate through
`credential`, which keeps its answer on `request.state`: one lookup per request.
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import asyncpg
from fastapi import HTTPException, Request, Response, status

from api.audit_log import with_origin
from db import passwords, sessions
from db.users import User, user_for_token
from domain.audit import Actor

if TYPE_CHECKING:
    from api.services import Services
    from runtime.settings import Settings

COOKIE = "accord_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOUCH_EVERY = timedelta(minutes=1)
"""`last_seen_at` is written at most this often per session: one write a minute, not one a request."""

_MAX_SESSION_ID = 100  # ours are 43 characters; anything much longer is not one of ours
_CACHE = "accord_credential"


@dataclass(frozen=True)
class AuthConfig:
    """Sessions, sign-in throttling and cookies; from the `ACCORD_SESSION_*`, `ACCORD_LOGIN_*` and
    `ACCORD_COOKIE_SECURE` settings unless `Services.auth` is given (tests)."""

    session_idle: timedelta = timedelta(minutes=30)
    session_absolute: timedelta = timedelta(hours=12)
    login_window: timedelta = timedelta(minutes=15)
    """Failures within this window count towards throttling and lockout."""
    login_throttle_after: int = 5
    """From this many failures on, each further attempt waits `login_throttle_delay`, doubling each time."""
    login_throttle_delay: timedelta = timedelta(seconds=2)
    login_lockout_after: int = 10
    """This many failures lock the account for `login_lockout`, correct password or not."""
    login_lockout: timedelta = timedelta(minutes=15)
    login_source_limit: int = 50
    """This many failures from one address within the window refuse every sign-in from it."""
    cookie_secure: bool = False
    """Mark the cookie Secure even on a request that did not arrive as HTTPS (TLS ends at a proxy
    uvicorn is not told to trust)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthConfig:
        return cls(
            session_idle=timedelta(minutes=settings.session_idle_minutes),
            session_absolute=timedelta(hours=settings.session_absolute_hours),
            login_window=timedelta(minutes=settings.login_window_minutes),
            login_throttle_after=settings.login_throttle_after,
            login_throttle_delay=timedelta(seconds=settings.login_throttle_seconds),
            login_lockout_after=settings.login_lockout_after,
            login_lockout=timedelta(minutes=settings.login_lockout_minutes),
            login_source_limit=settings.login_source_limit,
            cookie_secure=settings.cookie_secure,
        )


def auth_config(services: Services) -> AuthConfig:
    return services.auth if services.auth is not None else _configured()


@cache
def _configured() -> AuthConfig:
    from runtime.settings import get_settings

    return AuthConfig.from_settings(get_settings())


# ---------------------------------------------------------------- authentication


@dataclass(frozen=True)
class Credential:
    user: User
    method: Literal["api_token", "session"]
    session: sessions.Session | None = None


def bearer_token(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def credential(request: Request, services: Services) -> Credential | None:
    """The request's valid credential, or None. Computed once per request."""
    if hasattr(request.state, _CACHE):
        return getattr(request.state, _CACHE)
    found = await _find_credential(request, services)
    setattr(request.state, _CACHE, found)
    return found


async def authenticate(request: Request, services: Services) -> User | None:
    found = await credential(request, services)
    return found.user if found else None


async def _find_credential(request: Request, services: Services) -> Credential | None:
    token = bearer_token(request.headers.get("authorization"))
    if token is not None:
        async with services.pool.acquire() as conn:
            user = await user_for_token(conn, token)
        return Credential(user, "api_token") if user else None
    session_id = request.cookies.get(COOKIE)
    if not session_id or len(session_id) > _MAX_SESSION_ID:
        return None
    config, now = auth_config(services), services.clock()
    async with services.pool.acquire() as conn:
        session = await sessions.find(conn, session_id)
        if session is None or not is_live(session, now, config):
            return None
        if now - session.last_seen_at >= TOUCH_EVERY:
            await sessions.touch(conn, session.id_hash, now)
            session = replace(session, last_seen_at=now)
    return Credential(session.user, "session", session)


def is_live(session: sessions.Session, now: datetime, config: AuthConfig) -> bool:
    return now < session.expires_at and now < idle_deadline(session.last_seen_at, session.expires_at, config)


def idle_deadline(last_seen_at: datetime, expires_at: datetime, config: AuthConfig) -> datetime:
    """When the session ends if nothing more is asked of it."""
    return min(last_seen_at + config.session_idle, expires_at)


# ---------------------------------------------------------------- may this request act


def origin_refusal(request: Request, services: Services) -> str | None:
    """Why a browser request does not come from our own pages, or None. Headers a browser did not
    send are not held against the request (scripts send neither)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {site[:40]}); send it from Accord's own pages"
    sent = request.headers.get("origin")
    if sent is not None:
        ours = {_origin(str(request.base_url)), _origin(services.public_url)} - {None}
        if _origin(sent) not in ours:
            return f"request from another origin refused (Origin: {sent[:200]})"
    return None


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def csrf_refusal(request: Request, session: sessions.Session, services: Services) -> str | None:
    """Why a cookie-authenticated write is refused as a possible cross-site forgery, or None."""
    refused = origin_refusal(request, services)
    if refused:
        return refused
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        return (f"a write signed in by cookie needs the {CSRF_HEADER} header: the csrf_token answered by "
                "POST /api/v1/auth/login or GET /api/v1/auth/session")
    if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        return f"the {CSRF_HEADER} header does not belong to this session"
    return None


def write_refusal(request: Request, found: Credential, services: Services) -> str | None:
    """Why this credential may not make this request (403), or None. Reads are always allowed."""
    if request.method in SAFE_METHODS:
        return None
    if found.user.scope == "read":
        return "this API token is read-only"
    if found.session is not None:
        return csrf_refusal(request, found.session, services)
    return None


async def acting_user(request: Request, services: Services) -> User | None:
    """The user a write acts for, or None when the route is going to refuse it (401 or 403):
    what the idempotency middleware keys on, so a refused request never uses up a key."""
    found = await credential(request, services)
    if found is None or write_refusal(request, found, services):
        return None
    return found.user


def actor_for(user: User, auth_method: str, request: Request) -> Actor:
    return with_origin(Actor(user_id=user.id, name=user.display_name, role=user.role, roles=user.all_roles,
                             auth_method=auth_method, department=user.department, reach=user.reach), request)


async def require_actor(request: Request, services: Services) -> Actor:
    """The actor of an authenticated request (401 without a valid credential, 403 if it may not write)."""
    found = await credential(request, services)
    if found is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="sign in (POST /api/v1/auth/login) or send a valid API token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    actor = actor_for(found.user, found.method, request)
    request.state.actor = actor  # a refused write is recorded under its user
    refused = write_refusal(request, found, services)
    if refused:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=refused)
    return actor


# ---------------------------------------------------------------- cookies


def is_secure(request: Request, config: AuthConfig) -> bool:
    """HTTPS as uvicorn saw it: X-Forwarded-Proto counts only from proxies it is told to trust."""
    return config.cookie_secure or request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, session_id: str, config: AuthConfig) -> None:
    response.set_cookie(COOKIE, session_id, max_age=int(config.session_absolute.total_seconds()), path="/",
                        secure=is_secure(request, config), httponly=True, samesite="Lax")  # type: ignore[arg-type]


def clear_session_cookie(response: Response, request: Request, config: AuthConfig) -> None:
    response.delete_cookie(COOKIE, path="/", secure=is_secure(request, config), httponly=True,
                           samesite="Lax")  # type: ignore[arg-type]


# ---------------------------------------------------------------- sign-in throttling


@dataclass(frozen=True)
class LoginRefusal:
    """Sign-in refused before the password is looked at (429)."""

    reason: Literal["account_locked", "account_throttled", "source_limit"]
    retry_after: int  # seconds


async def login_refusal(conn: asyncpg.Connection, username: str, source_ip: str | None, now: datetime,
                        config: AuthConfig) -> LoginRefusal | None:
    """Whether this account or address must wait before it may try a password again.

    Per address: `login_source_limit` failures within the window refuse every attempt until the
    oldest of them leaves it. Per account, counting the failures in the window that ends at the
    latest one: from `login_lockout_after` on, locked for `login_lockout` after that failure; from
    `login_throttle_after` on, a wait of `login_throttle_delay` doubling with each failure.
    Attempts refused here record no failure, so a lockout ends on time however often it is knocked on.
    """
    since = now - config.login_window
    if source_ip is not None:
        nth = await passwords.source_failures(conn, source_ip, since, now, config.login_source_limit)
        if nth is not None:
            return LoginRefusal("source_limit", _seconds(nth + config.login_window - now))
    count, last = await account_failures(conn, username, now, config)
    if last is None:
        return None
    if count >= config.login_lockout_after:
        until = last + config.login_lockout
        return LoginRefusal("account_locked", _seconds(until - now)) if now < until else None
    if count >= config.login_throttle_after:
        until = last + throttle_delay(count, config)
        return LoginRefusal("account_throttled", _seconds(until - now)) if now < until else None
    return None


async def account_failures(conn: asyncpg.Connection, username: str, now: datetime,
                           config: AuthConfig) -> tuple[int, datetime | None]:
    """The account's latest failure up to `now`, and how many fell in the window ending at it."""
    _, last = await passwords.account_failures(conn, username, now - config.login_window - config.login_lockout, now)
    if last is None:
        return 0, None
    count, _ = await passwords.account_failures(conn, username, last - config.login_window, last)
    return count, last


def throttle_delay(failures: int, config: AuthConfig) -> timedelta:
    doublings = min(failures - config.login_throttle_after, 30)
    return min(config.login_throttle_delay * 2 ** doublings, config.login_lockout)


def _seconds(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))


async def begin_attempt(pool: asyncpg.Pool, username: str, source_ip: str | None, now: datetime,
                        config: AuthConfig) -> LoginRefusal | int:
    """Refuse the attempt (throttled, locked) or count it as a failure in advance: the id of its
    `login_failures` row, which the caller forgets if the password turns out right.

    Counting before the slow password check, under a lock per account, is what keeps a burst of
    parallel guesses from all passing the check before any of them is counted."""
    async with pool.acquire() as conn, conn.transaction():
        await passwords.lock_account(conn, username)
        refused = await login_refusal(conn, username, source_ip, now, config)
        if refused is not None:
            return refused
        return await passwords.record_failure(conn, username, source_ip, now, keep_failures_since(now, config))


def keep_failures_since(now: datetime, config: AuthConfig) -> datetime:
    """Older failures no longer matter to any decision above."""
    return now - config.login_window - config.login_lockout
