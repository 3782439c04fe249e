"""The tamper-evident audit trail: append, verify, checkpoint.

Every event stores `hash = SHA-256(prev_hash || canonical(event))`, where canonical is
sorted-key compact JSON of every stored field. Appends are serialised by a row lock
on `audit_chain_head`, so `seq` runs 1, 2, 3 ... without gaps and each event links to
the one before. A checkpoint signs (seq, hash) of the head with an HMAC key kept
outside the database: whoever rewrites the whole chain cannot forge it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from observability.metrics import AUDIT_WRITE_SECONDS, timed

GENESIS = b"\x00" * 32

# Every stored column except the hash itself, in the canonical form.
HASHED_FIELDS = (
    "seq", "event_id", "recorded_at", "occurred_at", "actor_id", "actor_name", "actor_role", "actor_department",
    "auth_method", "source_ip", "user_agent", "request_id", "action", "entity_type", "entity_id", "cooperation_id",
    "project_id", "before", "after", "comment", "outcome", "error", "workflow_id", "run_id", "event_seq", "state",
    "prev_hash",
)


@dataclass
class AuditEvent:
    """One audit event as the caller describes it; the chain adds seq, time and hashes."""

    actor_id: str
    actor_name: str
    actor_role: str
    auth_method: str
    action: str
    entity_type: str
    entity_id: str
    occurred_at: datetime | None = None
    actor_department: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    cooperation_id: str | None = None
    project_id: str | None = None
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    comment: str | None = None
    outcome: str = "succeeded"
    error: str | None = None
    workflow_id: str | None = None
    run_id: str | None = None
    event_seq: int | None = None
    state: dict[str, Any] | None = None


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def canonical(row: dict[str, Any]) -> bytes:
    """The bytes that are hashed: the same for a row before insert and as read back."""
    body = {name: _plain(row.get(name)) for name in HASHED_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(row: dict[str, Any]) -> bytes:
    return hashlib.sha256(bytes(row["prev_hash"]) + canonical(row)).digest()


def _normalise_json(value: Any) -> Any:
    """What jsonb gives back: keys as strings, tuples as lists."""
    return json.loads(json.dumps(value)) if value is not None else None


async def append(conn: asyncpg.Connection, event: AuditEvent) -> int | None:
    """Append one event inside the caller's transaction; return its seq.

    Returns None when (workflow_id, event_seq) is already recorded: an activity retry.
    """
    if not conn.is_in_transaction():
        raise RuntimeError("append the audit event inside the transaction of the change it records")
    with timed(AUDIT_WRITE_SECONDS):
        return await _append(conn, event)


async def _append(conn: asyncpg.Connection, event: AuditEvent) -> int | None:
    head = await conn.fetchrow("SELECT seq, hash, clock_timestamp() AS now FROM audit_chain_head FOR UPDATE")
    if event.workflow_id is not None and event.event_seq is not None:
        seen = await conn.fetchval(
            "SELECT seq FROM audit_events WHERE workflow_id = $1 AND event_seq = $2", event.workflow_id, event.event_seq
        )
        if seen is not None:
            return None
    row: dict[str, Any] = {
        **event.__dict__,
        "seq": head["seq"] + 1,
        "event_id": uuid.uuid4(),
        "recorded_at": head["now"],
        "occurred_at": event.occurred_at or head["now"],
        "before": _normalise_json(event.before),
        "after": _normalise_json(event.after),
        "state": _normalise_json(event.state),
        "prev_hash": bytes(head["hash"]),
    }
    row["hash"] = event_hash(row)
    columns = [*HASHED_FIELDS, "hash"]
    await conn.execute(
        f"INSERT INTO audit_events ({', '.join(columns)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(columns)))})",
        *[row[c] for c in columns],
    )
    await conn.execute("UPDATE audit_chain_head SET seq = $1, hash = $2", row["seq"], row["hash"])
    return row["seq"]


# ---------------------------------------------------------------- checkpoints


def checkpoint_signature(key: bytes, seq: int, chain_hash: bytes) -> bytes:
    return hmac.new(key, f"accord-audit-checkpoint:{seq}:{chain_hash.hex()}".encode(), hashlib.sha256).digest()


def key_id(key: bytes) -> str:
    """Names the key without revealing it, so a rotated key is recognisable."""
    return hashlib.sha256(b"accord-key-id:" + key).hexdigest()[:16]


async def write_checkpoint(conn: asyncpg.Connection, key: bytes) -> asyncpg.Record | None:
    """Sign the current chain head; None when nothing was appended since the last checkpoint."""
    async with conn.transaction():
        head = await conn.fetchrow("SELECT seq, hash FROM audit_chain_head FOR SHARE")
        last = await conn.fetchval("SELECT max(seq) FROM audit_checkpoints")
        if head["seq"] == 0 or (last is not None and last >= head["seq"]):
            return None
        return await conn.fetchrow(
            """
            INSERT INTO audit_checkpoints (seq, hash, key_id, signature) VALUES ($1, $2, $3, $4)
            RETURNING seq, hash, key_id, signature, created_at
            """,
            head["seq"], head["hash"], key_id(key), checkpoint_signature(key, head["seq"], bytes(head["hash"])),
        )


# ---------------------------------------------------------------- verification


@dataclass
class Verdict:
    intact: bool
    events: int
    first_bad_seq: int | None = None
    kind: str | None = None  # changed, deleted, inserted, reordered, truncated, rewritten
    detail: str | None = None
    checkpoints: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


async def verify(conn: asyncpg.Connection, key: bytes, batch: int = 5000, retired: Sequence[bytes] = ()) -> Verdict:
    """Walk the whole chain in seq order, then hold it against the head and every checkpoint.

    Each checkpoint is checked with the key its `key_id` names: the current key or one of the
    `retired` keys (after a rotation). A checkpoint naming any other key counts as forged."""
    keys = {key_id(k): k for k in (*retired, key)}
    start = await conn.fetchrow("SELECT coalesce(max(last_seq), 0) AS seq, "
                                "(SELECT last_hash FROM audit_archives ORDER BY last_seq DESC LIMIT 1) AS hash "
                                "FROM audit_archives")
    expected, prev = start["seq"] + 1, bytes(start["hash"]) if start["hash"] else GENESIS
    count = 0
    hashes: dict[int, bytes] = {}
    checkpoint_rows = await conn.fetch("SELECT seq, hash, key_id, signature FROM audit_checkpoints ORDER BY seq")
    wanted = {r["seq"] for r in checkpoint_rows}
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = conn.cursor(f"SELECT {', '.join(HASHED_FIELDS)}, hash FROM audit_events ORDER BY seq, recorded_at",
                             prefetch=batch)
        async for record in cursor:
            row = dict(record)
            seq = row["seq"]
            if seq < expected:
                return Verdict(False, count, seq, "inserted", f"a second event claims seq {seq}")
            if seq > expected:
                return Verdict(False, count, expected, "deleted", f"events {expected}..{seq - 1} are missing")
            own_hash = bytes(row["hash"])
            if event_hash(row) != own_hash:
                return Verdict(False, count, seq, "changed", "the event's content does not match its hash")
            if bytes(row["prev_hash"]) != prev:
                return Verdict(False, count, seq, "reordered",
                               "the event is intact but does not follow the event before it")
            if seq in wanted:
                hashes[seq] = own_hash
            prev, expected, count = own_hash, expected + 1, count + 1
        head = await conn.fetchrow("SELECT seq, hash FROM audit_chain_head")
    last_seq = expected - 1
    if head["seq"] > last_seq:
        return Verdict(False, count, last_seq + 1, "truncated", f"the head says {head['seq']} events, found {last_seq}")
    if head["seq"] < last_seq:
        return Verdict(False, count, head["seq"] + 1, "inserted", "events follow the recorded head of the chain")
    vouched = start["seq"]  # the last seq a valid checkpoint (or the archive) vouches for
    for checkpoint in checkpoint_rows:
        seq = checkpoint["seq"]
        signer = keys.get(checkpoint["key_id"])
        if signer is None or not hmac.compare_digest(bytes(checkpoint["signature"]),
                                                     checkpoint_signature(signer, seq, bytes(checkpoint["hash"]))):
            # A forged checkpoint may cover a recomputed chain: only the valid ones before it vouch.
            return Verdict(False, count, vouched + 1, "rewritten",
                           f"checkpoint at seq {seq} is not signed by our key; "
                           f"nothing after seq {vouched} is vouched for")
        if seq > last_seq:
            return Verdict(False, count, last_seq + 1, "truncated", f"a checkpoint vouches for seq {seq}")
        if seq in hashes and hashes[seq] != bytes(checkpoint["hash"]):
            return Verdict(False, count, vouched + 1, "rewritten",
                           f"the chain was recomputed: event {seq} no longer has the hash signed at checkpoint; "
                           f"the change lies in events {vouched + 1}..{seq}")
        vouched = max(vouched, seq)
    if bytes(head["hash"]) != prev:
        # Same length, another last hash: the chain was recomputed (after the last valid checkpoint).
        return Verdict(False, count, vouched + 1, "rewritten",
                       f"the last event's hash is not the one the chain head recorded; "
                       f"the change lies after seq {vouched}")
    return Verdict(True, count, checkpoints=len(checkpoint_rows))
