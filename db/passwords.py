"""Passwords (argon2id hashes in `users.password_hash`) and the failed sign-ins that throttle them.

Hashing uses argon2-cffi's defaults, RFC 9106's second recommended profile: argon2id,
t=3 iterations, m=64 MiB, p=4 lanes (well above OWASP's minimum of m=19 MiB, t=2, p=1).
A hash made with other parameters still verifies, and is replaced at the next successful
sign-in (`needs_rehash`). Hashing takes a tenth of a second of CPU on purpose, so it
runs in a worker thread (argon2 releases the GIL), never on the event loop.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from functools import cache

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from domain.passwords import normalize, problems

HASHER = PasswordHasher()


class PasswordRejected(ValueError):
    """The new password breaks the policy; `reasons` says how (domain.passwords.problems)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


def hash_password(password: str) -> str:
    return HASHER.hash(normalize(password))


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, normalize(password))
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    try:
        return HASHER.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


@cache
def dummy_hash() -> str:
    """A hash of a random password with the current parameters: an unknown user's sign-in is
    verified against it, so it takes as long as a known user's."""
    return hash_password(secrets.token_urlsafe(32))


async def hash_in_thread(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_in_thread(password_hash: str | None, password: str) -> bool:
    """Verify; with no hash (unknown user, no password set) verify against the dummy and say no."""
    if password_hash is None:
        await asyncio.to_thread(lambda: verify_password(dummy_hash(), password))  # the first call also makes it
        return False
    return await asyncio.to_thread(verify_password, password_hash, password)


# ---------------------------------------------------------------- stored passwords


async def login_record(conn: asyncpg.Connection, username: str) -> asyncpg.Record | None:
    """id, username, password_hash, disabled_at of the account named exactly `username`."""
    return await conn.fetchrow(
        "SELECT id, username, password_hash, disabled_at FROM users WHERE username = $1", username)


async def set_password(conn: asyncpg.Connection, user_id: str, password: str, now: datetime | None = None) -> None:
    """Check the policy (PasswordRejected), then store the new password's hash.

    Callers revoke the user's sessions as their situation needs (a change by the user keeps
    the current one; a reset by an administrator keeps none)."""
    username = await conn.fetchval("SELECT username FROM users WHERE id = $1", user_id)
    if username is None:
        raise LookupError(f"no user {user_id}")
    reasons = problems(password, username)
    if reasons:
        raise PasswordRejected(reasons)
    await store_hash(conn, user_id, await hash_in_thread(password), now or datetime.now(UTC))


async def store_hash(conn: asyncpg.Connection, user_id: str, password_hash: str, now: datetime) -> None:
    await conn.execute("UPDATE users SET password_hash = $2, password_changed_at = $3 WHERE id = $1",
                       user_id, password_hash, now)


async def replace_hash(conn: asyncpg.Connection, user_id: str, old_hash: str, new_hash: str) -> None:
    """The same password with current parameters; only if nobody changed the password meanwhile."""
    await conn.execute("UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
                       user_id, old_hash, new_hash)


# ---------------------------------------------------------------- failed sign-ins


async def lock_account(conn: asyncpg.Connection, username: str) -> None:
    """Serialise sign-in bookkeeping of one account (any case) until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('accord-login:' || lower($1)))", username)


async def record_failure(conn: asyncpg.Connection, username: str, source_ip: str | None, at: datetime,
                         keep_since: datetime) -> int:
    """One failed sign-in (its row id); rows of this account and address older than `keep_since` go."""
    failure_id = await conn.fetchval(
        "INSERT INTO login_failures (username, source_ip, at) VALUES ($1, $2, $3) RETURNING id",
        username, source_ip, at)
    await conn.execute("DELETE FROM login_failures WHERE lower(username) = lower($1) AND at < $2",
                       username, keep_since)
    if source_ip is not None:
        await conn.execute("DELETE FROM login_failures WHERE source_ip = $1 AND at < $2", source_ip, keep_since)
    return failure_id


async def forget_failure(conn: asyncpg.Connection, failure_id: int) -> None:
    """An attempt counted as failed in advance turned out right."""
    await conn.execute("DELETE FROM login_failures WHERE id = $1", failure_id)


async def account_failures(conn: asyncpg.Connection, username: str, since: datetime,
                           until: datetime) -> tuple[int, datetime | None]:
    """How many failures of this account (any case) in (since, until], and the latest one's time."""
    row = await conn.fetchrow(
        "SELECT count(*) AS n, max(at) AS last FROM login_failures"
        " WHERE lower(username) = lower($1) AND at > $2 AND at <= $3", username, since, until)
    return row["n"], row["last"]


async def source_failures(conn: asyncpg.Connection, source_ip: str, since: datetime, until: datetime,
                          limit: int) -> datetime | None:
    """None while the address has fewer than `limit` failures in (since, until]; otherwise the time
    of its `limit`-th latest one (the count drops below the limit once that one is old enough)."""
    return await conn.fetchval(
        "SELECT at FROM login_failures WHERE source_ip = $1 AND at > $2 AND at <= $3"
        " ORDER BY at DESC OFFSET $4 LIMIT 1", source_ip, since, until, limit - 1)


async def clear_failures(conn: asyncpg.Connection, username: str) -> None:
    """A successful sign-in (or a reset) forgives the account's failures, but the address's stay
    counted: the rows lose their username rather than going, or an attacker holding one account
    could wipe the per-address count by signing in to it now and then. (No account is named "".)"""
    await conn.execute(
        "UPDATE login_failures SET username = '' WHERE lower(username) = lower($1)", username)
