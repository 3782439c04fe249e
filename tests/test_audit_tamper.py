"""Tampering with the audit trail is detected, classified and located.

A template database holds a chain of 60 varied events with a signed checkpoint every
20 (at 20, 40 and 60). Each case copies it into a database of its own, tampers as the
superuser with the append-only triggers switched off (`session_replication_role =
replica`: what someone holding the owner's password can do), and asks `verify` for
its verdict: not intact, the kind of tampering, and the first bad seq.

The cases are drawn by a seeded random generator (reproducible ids), several per
kind of tampering. The shared session database is never touched.

What each kind of tampering looks like to `verify` (seq is part of the hashed content):

- a field changed (content, `prev_hash` or the stored hash): `changed` at that event;
- an event deleted: `deleted` at the first missing seq;
- the tail deleted: `truncated` at the first missing seq, whether or not the head row
  was moved back (the last checkpoint still vouches for the lost events);
- a second event with an existing seq: `inserted` at that seq; events appended after
  the head without moving it: `inserted` at head + 1;
- an event inserted by renumbering the ones after it: the first renumbered event no
  longer matches its hash (its seq changed): `changed` at k + 1. The forged event at k
  is self-consistent and links to k - 1, so nothing shows before its successor;
- two events' seqs swapped: `changed` at the lower seq; swapped and each rehashed for
  its new seq: `reordered` at the lower seq; one event changed and only its own hash
  recomputed: `reordered` at the next event (its link broke);
- a change with the whole chain after it recomputed (with or without moving the head),
  a checkpoint signed with another key, or both: `rewritten`, bounded by the last
  valid checkpoint before the change (first_bad_seq is the seq after it).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import pytest
import pytest_asyncio

from db import audit_chain
from db.audit_chain import event_hash, verify
from db.pool import connect
from tests.test_audit_support import (
    KEY,
    WRONG_KEY,
    build_chain,
    forged,
    insert_row,
    recompute_from,
    row,
    scratch_database,
    sign_checkpoint,
    tamper_session,
)

EVENTS = 60
EVERY = 20
CHECKPOINTS = list(range(EVERY, EVENTS + 1, EVERY))  # 20, 40, 60


def after_last_checkpoint_before(seq: int) -> int:
    """first_bad_seq of a `rewritten` verdict: the seq after the last valid checkpoint below `seq`."""
    return max([c for c in CHECKPOINTS if c < seq], default=0) + 1


@dataclass
class Pristine:
    """The module's own database and the rows of the untouched chain, to restore before each case."""

    url: str
    conn: asyncpg.Connection
    events: list[dict]
    checkpoints: list[dict]
    head: dict

    async def restore(self) -> None:
        conn = self.conn
        await tamper_session(conn)
        async with conn.transaction():
            await conn.execute("DELETE FROM audit_events")
            await conn.execute("DELETE FROM audit_checkpoints")
            await conn.execute("DELETE FROM audit_chain_head")
            await conn.execute("INSERT INTO audit_chain_head (seq, hash) VALUES ($1, $2)",
                               self.head["seq"], self.head["hash"])
            for table, rows_ in (("audit_events", self.events), ("audit_checkpoints", self.checkpoints)):
                columns = list(rows_[0])
                await conn.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"VALUES ({', '.join(f'${i + 1}' for i in range(len(columns)))})",
                    [[r[c] for c in columns] for r in rows_])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pristine(pg_url: str) -> AsyncIterator[Pristine]:
    """A database of this module's own (never the shared one) holding the 60-event chain."""
    async with scratch_database(pg_url) as url:
        conn = await connect(url)
        try:
            assert await build_chain(conn, EVENTS, EVERY) == CHECKPOINTS
            yield Pristine(
                url, conn,
                [dict(r) for r in await conn.fetch("SELECT * FROM audit_events ORDER BY seq")],
                [dict(r) for r in await conn.fetch("SELECT * FROM audit_checkpoints ORDER BY seq")],
                dict(await conn.fetchrow("SELECT seq, hash FROM audit_chain_head")),
            )
        finally:
            await conn.close()


@pytest_asyncio.fixture(loop_scope="session")
async def chain(pristine: Pristine) -> asyncpg.Connection:
    """A superuser connection, triggers off, on the pristine chain (restored, and checked intact)."""
    await pristine.restore()
    verdict = await verify(pristine.conn, KEY)
    assert (verdict.intact, verdict.events, verdict.checkpoints) == (True, EVENTS, len(CHECKPOINTS))
    return pristine.conn


# ---------------------------------------------------------------- tamperings

Tamper = Callable[[asyncpg.Connection], Awaitable[None]]

CHANGES = {
    "actor_name": "UPDATE audit_events SET actor_name = 'Mallory 马某' WHERE seq = $1",
    "after": """UPDATE audit_events SET after = after || '{"amount": "99999999.00"}'::jsonb WHERE seq = $1""",
    "recorded_at": "UPDATE audit_events SET recorded_at = recorded_at + interval '1 microsecond' WHERE seq = $1",
    "recorded_at_other_month": "UPDATE audit_events SET recorded_at = recorded_at - interval '40 days' WHERE seq = $1",
    "outcome": "UPDATE audit_events SET outcome = CASE outcome WHEN 'succeeded' THEN 'refused' ELSE 'succeeded' END "
               "WHERE seq = $1",
    "before": """UPDATE audit_events SET before = '{"status": "forged"}'::jsonb WHERE seq = $1""",
    "comment": "UPDATE audit_events SET comment = coalesce(comment, '') || ' (edited)' WHERE seq = $1",
    "state": """UPDATE audit_events SET state = jsonb_set(coalesce(state, '{}'), '{stage}', '"completed"')
                WHERE seq = $1""",
    "occurred_at": "UPDATE audit_events SET occurred_at = occurred_at - interval '1 day' WHERE seq = $1",
    "prev_hash": "UPDATE audit_events SET prev_hash = sha256(prev_hash) WHERE seq = $1",
    "hash": "UPDATE audit_events SET hash = sha256(hash) WHERE seq = $1",
}


def change(field: str, seq: int) -> Tamper:
    async def run(conn: asyncpg.Connection) -> None:
        assert await conn.execute(CHANGES[field], seq) == "UPDATE 1"
    return run


def delete(first: int, last: int | None = None) -> Tamper:
    async def run(conn: asyncpg.Connection) -> None:
        await conn.execute("DELETE FROM audit_events WHERE seq BETWEEN $1 AND $2", first, last or first)
    return run


def truncate(first: int, fix_head: bool) -> Tamper:
    """Delete the tail from `first`; a careful forger also moves the head back to the new last event."""
    async def run(conn: asyncpg.Connection) -> None:
        await conn.execute("DELETE FROM audit_events WHERE seq >= $1", first)
        if fix_head:
            last_hash = bytes((await row(conn, first - 1))["hash"]) if first > 1 else audit_chain.GENESIS
            await conn.execute("UPDATE audit_chain_head SET seq = $1, hash = $2", first - 1, last_hash)
    return run


def insert_duplicate(seq: int, forged_first: bool) -> Tamper:
    """A second, correctly linked and hashed event with an existing seq (the primary key includes the time)."""
    async def run(conn: asyncpg.Connection) -> None:
        original = await row(conn, seq)
        prev = await row(conn, seq - 1) if seq > 1 else None
        offset = timedelta(microseconds=-1 if forged_first else 1)
        await insert_row(conn, forged(prev, seq, original["recorded_at"] + offset))
    return run


def insert_renumbered(seq: int, move_head: bool) -> Tamper:
    """Make room at `seq` by renumbering every later event, and put a forged event there."""
    async def run(conn: asyncpg.Connection) -> None:
        await conn.execute("UPDATE audit_events SET seq = seq + 1 WHERE seq >= $1", seq)
        prev = await row(conn, seq - 1)
        await insert_row(conn, forged(prev, seq, prev["recorded_at"] + timedelta(microseconds=1)))
        if move_head:
            await conn.execute("UPDATE audit_chain_head SET seq = seq + 1")
    return run


def append_tail(count: int) -> Tamper:
    """Correctly linked and hashed events after the last one; the head row is not moved."""
    async def run(conn: asyncpg.Connection) -> None:
        prev = await row(conn, EVENTS)
        for seq in range(EVENTS + 1, EVENTS + count + 1):
            new = forged(prev, seq, await conn.fetchval("SELECT clock_timestamp()"))
            await insert_row(conn, new)
            prev = new
    return run


def swap(first: int, second: int, rehash: bool) -> Tamper:
    async def run(conn: asyncpg.Connection) -> None:
        await conn.execute("UPDATE audit_events SET seq = CASE seq WHEN $1 THEN $2 ELSE $1 END "
                           "WHERE seq IN ($1, $2)", first, second)
        if rehash:  # each moved event rehashed for its new seq (its prev_hash still names its old predecessor)
            for r in [await row(conn, first), await row(conn, second)]:
                await conn.execute("UPDATE audit_events SET hash = $1 WHERE seq = $2", event_hash(r), r["seq"])
    return run


def rehash_one(seq: int) -> Tamper:
    async def run(conn: asyncpg.Connection) -> None:
        await change("actor_name", seq)(conn)
        await conn.execute("UPDATE audit_events SET hash = $1 WHERE seq = $2", event_hash(await row(conn, seq)), seq)
    return run


def rewrite(seq: int, move_head: bool = True, field: str = "actor_name") -> Tamper:
    """Change one event and recompute the whole chain after it: every link is consistent again."""
    async def run(conn: asyncpg.Connection) -> None:
        await change(field, seq)(conn)
        await recompute_from(conn, seq, move_head=move_head)
    return run


def forge_checkpoint(seq: int) -> Tamper:
    """A new checkpoint of the true hash at `seq`, signed with a key that is not ours."""
    async def run(conn: asyncpg.Connection) -> None:
        await sign_checkpoint(conn, seq, bytes((await row(conn, seq))["hash"]), WRONG_KEY)
    return run


def resign_checkpoint(seq: int) -> Tamper:
    async def run(conn: asyncpg.Connection) -> None:
        chain_hash = bytes(await conn.fetchval("SELECT hash FROM audit_checkpoints WHERE seq = $1", seq))
        await conn.execute("UPDATE audit_checkpoints SET signature = $1, key_id = $2 WHERE seq = $3",
                           audit_chain.checkpoint_signature(WRONG_KEY, seq, chain_hash),
                           audit_chain.key_id(WRONG_KEY), seq)
    return run


def rewrite_and_resign(seq: int) -> Tamper:
    """Rewrite from `seq`, then replace every checkpoint the rewrite broke by one signed with another key."""
    async def run(conn: asyncpg.Connection) -> None:
        await rewrite(seq)(conn)
        await conn.execute("DELETE FROM audit_checkpoints WHERE seq >= $1", seq)
        for c in CHECKPOINTS:
            if c >= seq:
                await sign_checkpoint(conn, c, bytes((await row(conn, c))["hash"]), WRONG_KEY)
    return run


# ---------------------------------------------------------------- the seeded cases


@dataclass(frozen=True)
class Case:
    id: str
    tamper: Tamper
    kind: str
    first_bad_seq: int


def cases(seed: int = 20171201) -> list[Case]:
    rng = random.Random(seed)
    out: list[Case] = []

    def pick(low: int = 2, high: int = EVENTS - 1) -> int:
        return rng.randint(low, high)

    # Every field, at a random event; the four the auditors care most about twice more.
    for field in CHANGES:
        seq = pick(1, EVENTS)
        out.append(Case(f"change-{field}-{seq}", change(field, seq), "changed", seq))
    for field in ("actor_name", "after", "recorded_at", "outcome"):
        for seq in (1, EVENTS) if field == "actor_name" else (pick(),):
            out.append(Case(f"change-{field}-{seq}", change(field, seq), "changed", seq))
    for seq in (1, pick(), pick()):
        out.append(Case(f"delete-{seq}", delete(seq), "deleted", seq))
    first = pick(2, EVENTS - 10)
    out.append(Case(f"delete-{first}..{first + 4}", delete(first, first + 4), "deleted", first))
    for fix_head in (False, True):
        for seq in (EVENTS, pick(EVERY + 1, EVENTS - 1), pick(2, EVERY)):
            label = "fixed-head" if fix_head else "stale-head"
            out.append(Case(f"truncate-from-{seq}-{label}", truncate(seq, fix_head), "truncated", seq))
    for seq, forged_first in ((pick(), True), (pick(), False)):
        out.append(Case(f"insert-duplicate-{seq}-{'before' if forged_first else 'after'}",
                        insert_duplicate(seq, forged_first), "inserted", seq))
    for seq, move_head in ((pick(), False), (pick(), True)):
        out.append(Case(f"insert-renumbered-{seq}-{'head-moved' if move_head else 'head-kept'}",
                        insert_renumbered(seq, move_head), "changed", seq + 1))
    for count in (1, 3):
        out.append(Case(f"append-{count}-head-not-moved", append_tail(count), "inserted", EVENTS + 1))
    for rehash in (False, True):
        for _ in range(2):
            a, b = sorted(rng.sample(range(1, EVENTS + 1), 2))
            out.append(Case(f"swap-{a}-{b}{'-rehashed' if rehash else ''}", swap(a, b, rehash),
                            "reordered" if rehash else "changed", a))
    a = pick(1, EVENTS - 1)
    out.append(Case(f"swap-adjacent-{a}-{a + 1}-rehashed", swap(a, a + 1, True), "reordered", a))
    seq = pick()
    out.append(Case(f"change-{seq}-rehash-only-it", rehash_one(seq), "reordered", seq + 1))
    for seq in (1, EVERY, EVERY + 1, pick(EVERY + 2, 2 * EVERY - 1), pick(2 * EVERY + 1, EVENTS - 1), EVENTS):
        out.append(Case(f"rewrite-from-{seq}", rewrite(seq), "rewritten", after_last_checkpoint_before(seq)))
    for seq in (pick(), pick()):
        out.append(Case(f"rewrite-from-{seq}-head-not-moved", rewrite(seq, move_head=False), "rewritten",
                        after_last_checkpoint_before(seq)))
    seq = pick()
    out.append(Case(f"rewrite-after-from-{seq}", rewrite(seq, field="after"), "rewritten",
                    after_last_checkpoint_before(seq)))
    for seq in (pick(1, EVERY - 1), pick(EVERY + 1, 2 * EVERY - 1)):
        out.append(Case(f"forge-checkpoint-{seq}", forge_checkpoint(seq), "rewritten",
                        after_last_checkpoint_before(seq)))
    for seq in CHECKPOINTS:
        out.append(Case(f"resign-checkpoint-{seq}", resign_checkpoint(seq), "rewritten",
                        after_last_checkpoint_before(seq)))
    for seq in (pick(EVERY + 1, 2 * EVERY), pick(2 * EVERY + 1, EVENTS)):
        out.append(Case(f"rewrite-from-{seq}-and-resign", rewrite_and_resign(seq), "rewritten",
                        after_last_checkpoint_before(seq)))
    return out


CASES = cases()


def test_the_seeded_set_is_large_and_covers_every_kind() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.kind for c in CASES} == {"changed", "deleted", "inserted", "reordered", "truncated", "rewritten"}


async def test_untampered_chain_is_intact(chain: asyncpg.Connection) -> None:
    verdict = await verify(chain, KEY)
    assert verdict.as_dict() == {"intact": True, "events": EVENTS, "first_bad_seq": None, "kind": None,
                                 "detail": None, "checkpoints": len(CHECKPOINTS)}
    # Small batches page through the same chain.
    assert (await verify(chain, KEY, batch=7)).as_dict() == verdict.as_dict()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_tampering_is_detected(chain: asyncpg.Connection, case: Case) -> None:
    await case.tamper(chain)
    verdict = await verify(chain, KEY)
    assert (verdict.intact, verdict.kind, verdict.first_bad_seq) == (False, case.kind, case.first_bad_seq), \
        verdict.detail
    assert verdict.detail


async def test_the_wrong_key_trusts_no_checkpoint(chain: asyncpg.Connection) -> None:
    verdict = await verify(chain, WRONG_KEY)
    assert (verdict.intact, verdict.kind, verdict.first_bad_seq) == (False, "rewritten", 1)


async def test_a_later_genuine_checkpoint_does_not_launder_a_rewrite(chain: asyncpg.Connection) -> None:
    """The forger recomputes from 33 and moves the head; then a worker signs the (forged) head as usual."""
    await rewrite(33)(chain)
    async with chain.transaction():
        await chain.execute("SET LOCAL session_replication_role = origin")
        await audit_chain.append(chain, audit_chain.AuditEvent(
            actor_id="system", actor_name="accord audit", actor_role="system", auth_method="cli",
            action="audit.verified", entity_type="audit_trail", entity_id="audit_events"))
    assert (await audit_chain.write_checkpoint(chain, KEY))["seq"] == EVENTS + 1
    verdict = await verify(chain, KEY)
    assert (verdict.intact, verdict.kind, verdict.first_bad_seq) == (False, "rewritten", 21)
    assert "21..40" in verdict.detail


async def test_a_rotated_key_still_vouches_for_the_checkpoints_it_signed(chain: asyncpg.Connection) -> None:
    """After a rotation (docs/operations.md) the old checkpoints are checked with the retired key
    their key id names, the new ones with the new key; without the retired key they vouch for nothing."""
    new_key = b"the key after the rotation, 2026"
    async with chain.transaction():
        await audit_chain.append(chain, audit_chain.AuditEvent(
            actor_id="system", actor_name="accord audit", actor_role="system", auth_method="cli",
            action="audit.verified", entity_type="audit_trail", entity_id="audit_events"))
    assert await audit_chain.write_checkpoint(chain, new_key) is not None
    verdict = await verify(chain, new_key, retired=[KEY])
    assert (verdict.intact, verdict.checkpoints) == (True, len(CHECKPOINTS) + 1)
    forgotten = await verify(chain, new_key)
    assert (forgotten.intact, forgotten.kind, forgotten.first_bad_seq) == (False, "rewritten", 1)
    # A retired key only checks: a checkpoint it did not sign is still caught.
    await chain.execute("UPDATE audit_checkpoints SET signature = $1 WHERE seq = $2",
                        audit_chain.checkpoint_signature(WRONG_KEY, EVENTS + 1, b"x"), EVENTS + 1)
    assert (await verify(chain, new_key, retired=[KEY])).kind == "rewritten"


async def test_appends_after_verification_keep_the_chain_intact(chain: asyncpg.Connection) -> None:
    for _ in range(3):
        async with chain.transaction():
            await audit_chain.append(chain, audit_chain.AuditEvent(
                actor_id="u", actor_name="名字", actor_role="auditor", auth_method="api_token",
                action="audit.searched", entity_type="audit_trail", entity_id="audit_events",
                after={"q": "博奥", "cursor": None}))
    assert await audit_chain.write_checkpoint(chain, KEY) is not None
    assert await audit_chain.write_checkpoint(chain, KEY) is None  # nothing new to sign
    verdict = await verify(chain, KEY)
    assert (verdict.intact, verdict.events, verdict.checkpoints) == (True, EVENTS + 3, len(CHECKPOINTS) + 1)


async def test_only_an_exported_checkpoint_catches_a_truncation_whose_checkpoints_went_too(
        chain: asyncpg.Connection) -> None:
    """The documented limit: delete the tail, move the head back and delete the checkpoints that covered
    the lost events, and the database alone looks intact. The checkpoints exported earlier do not."""
    exported = [dict(r) for r in await chain.fetch("SELECT seq, hash, signature FROM audit_checkpoints ORDER BY seq")]
    await truncate(45, fix_head=True)(chain)
    await chain.execute("DELETE FROM audit_checkpoints WHERE seq >= 45")
    verdict = await verify(chain, KEY)
    assert (verdict.intact, verdict.events, verdict.checkpoints) == (True, 44, 2)
    # Held against the exported list: the last exported checkpoint vouches for events that are gone.
    last = exported[-1]
    assert audit_chain.checkpoint_signature(KEY, last["seq"], bytes(last["hash"])) == bytes(last["signature"])
    assert last["seq"] > verdict.events


async def test_verify_reads_one_snapshot_while_events_are_appended(pristine: Pristine,
                                                                   chain: asyncpg.Connection) -> None:
    """Appends racing verifications: each verdict is of one consistent snapshot (head and events agree)."""
    reader, writer = await connect(pristine.url), await connect(pristine.url)
    done = asyncio.Event()

    async def keep_appending() -> None:
        for _ in range(40):
            async with writer.transaction():
                await audit_chain.append(writer, audit_chain.AuditEvent(
                    actor_id="u", actor_name="n", actor_role="r", auth_method="api_token",
                    action="audit.searched", entity_type="audit_trail", entity_id="audit_events"))
            await asyncio.sleep(0)
        done.set()

    async def keep_verifying() -> list[audit_chain.Verdict]:
        verdicts = []
        while not done.is_set():
            verdicts.append(await verify(reader, KEY, batch=5))
        return verdicts

    try:
        _, verdicts = await asyncio.gather(keep_appending(), keep_verifying())
        final = await verify(reader, KEY)
    finally:
        await reader.close()
        await writer.close()
    assert verdicts and all(v.intact for v in verdicts), [v.detail for v in verdicts]
    assert all(EVENTS <= v.events <= EVENTS + 40 for v in verdicts)
    assert (final.intact, final.events) == (True, EVENTS + 40)
