"""`accord audit ...` as an operator runs it: verify, checkpoint, partitions, archive.

Each test runs the real console script in a subprocess against a database of its own
(never the shared one), with the checkpoint key in ACCORD_AUDIT_CHECKPOINT_KEY and the
working directory in a temporary folder (so no `.env` or `.data` key is picked up).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from db.audit_chain import verify
from db.pool import connect
from tests.test_audit_support import KEY, WRONG_KEY, build_chain, forged, insert_row, scratch_database, tamper_session

ACCORD = Path(sys.executable).parent / "accord"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


async def accord(cwd: Path, *args: str, key: bytes | None = KEY, **env: str) -> Run:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    if key is not None:
        environment["ACCORD_AUDIT_CHECKPOINT_KEY"] = key.decode()
    environment.update(env)
    process = await asyncio.create_subprocess_exec(
        str(ACCORD), *args, cwd=cwd, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


@pytest_asyncio.fixture(loop_scope="session")
async def database(pg_url: str) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A fresh migrated database of the test's own, with a 25-event chain signed at 10 and 20."""
    async with scratch_database(pg_url, prefix="cli") as url:
        conn = await connect(url)
        try:
            await build_chain(conn, events=25, checkpoint_every=10)
            yield url, conn
        finally:
            await conn.close()


# ---------------------------------------------------------------- verify and checkpoint


async def test_verify_exits_0_when_intact_and_1_after_tampering(database, tmp_path: Path) -> None:
    url, conn = database
    run = await accord(tmp_path, "audit", "verify", "--database-url", url)
    assert run.code == 0, run.err
    assert run.json() == {"intact": True, "events": 25, "first_bad_seq": None, "kind": None, "detail": None,
                          "checkpoints": 2}
    # The verification is itself recorded, by the CLI's system actor.
    recorded = await conn.fetchrow("SELECT * FROM audit_events ORDER BY seq DESC LIMIT 1")
    assert (recorded["seq"], recorded["action"], recorded["actor_name"], recorded["auth_method"]) == (
        26, "audit.verified", "accord audit", "cli")
    assert recorded["after"] == run.json()

    await tamper_session(conn)
    await conn.execute("UPDATE audit_events SET after = after || '{\"amount\": \"1.00\"}' WHERE seq = 7")
    run = await accord(tmp_path, "audit", "verify", "--database-url", url)
    assert run.code == 1, (run.out, run.err)
    verdict = run.json()
    assert (verdict["intact"], verdict["kind"], verdict["first_bad_seq"]) == (False, "changed", 7)
    assert (await verify(conn, KEY)).first_bad_seq == 7  # the CLI's own event changed nothing


async def test_verify_with_another_key_or_none(database, tmp_path: Path) -> None:
    url, _ = database
    run = await accord(tmp_path, "audit", "verify", "--database-url", url, key=WRONG_KEY)
    assert run.code == 1 and run.json()["kind"] == "rewritten" and run.json()["first_bad_seq"] == 1
    run = await accord(tmp_path, "audit", "verify", "--database-url", url, key=None)
    assert run.code != 0 and "ACCORD_AUDIT_CHECKPOINT_KEY" in run.err


async def test_verify_exits_1_on_a_rewritten_chain(database, tmp_path: Path) -> None:
    """Recomputed after a change, head and all: only the signed checkpoint (at 20) tells."""
    url, conn = database
    from tests.test_audit_support import recompute_from

    await tamper_session(conn)
    await conn.execute("UPDATE audit_events SET actor_name = 'Mallory' WHERE seq = 15")
    await recompute_from(conn, 15)
    run = await accord(tmp_path, "audit", "verify", "--database-url", url)
    assert run.code == 1
    assert (run.json()["kind"], run.json()["first_bad_seq"]) == ("rewritten", 11)


async def test_checkpoint_signs_the_head_once(database, tmp_path: Path) -> None:
    url, conn = database
    run = await accord(tmp_path, "audit", "checkpoint", "--database-url", url)
    assert run.code == 0, run.err
    signed = run.json()
    head = await conn.fetchrow("SELECT seq, hash FROM audit_chain_head")
    assert signed == {"seq": 25, "hash": bytes(head["hash"]).hex()}
    again = await accord(tmp_path, "audit", "checkpoint", "--database-url", url)
    assert (again.code, again.json()) == (0, None)


# ---------------------------------------------------------------- partitions


def month_name(day: date) -> str:
    return f"audit_events_{day:%Y_%m}"


async def test_partitions_months_ahead(database, tmp_path: Path) -> None:
    url, conn = database
    run = await accord(tmp_path, "audit", "partitions", "--months", "2", "--database-url", url)
    assert run.code == 0, run.err
    today = await conn.fetchval("SELECT date_trunc('month', now())::date")
    expected = [month_name(today), month_name((today + timedelta(days=32)).replace(day=1)),
                month_name((today + timedelta(days=63)).replace(day=1))]
    assert run.out.split() == expected
    assert (await accord(tmp_path, "audit", "partitions", "--months", "2", "--database-url", url)).out.split() == \
        expected  # idempotent
    # Further ahead than the migration went: a new partition, guarded like the others.
    far = await accord(tmp_path, "audit", "partitions", "--months", "30", "--database-url", url)
    assert far.code == 0 and len(far.out.split()) == 31
    last = far.out.split()[-1]
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute(f"TRUNCATE {last}")


# ---------------------------------------------------------------- archive


async def test_archive_refuses_a_month_younger_than_the_retention(database, tmp_path: Path) -> None:
    url, conn = database
    this_month = await conn.fetchval("SELECT to_char(now(), 'YYYY-MM')")
    five_months_ago = await conn.fetchval("SELECT to_char(now() - interval '5 months', 'YYYY-MM')")
    out = ["--out", str(tmp_path / "out"), "--database-url", url]
    young, younger, long_retention, too_short = await asyncio.gather(
        accord(tmp_path, "audit", "archive", this_month, *out),
        accord(tmp_path, "audit", "archive", five_months_ago, *out),
        # A longer retention refuses older months too; one shorter than the legal minimum is not accepted.
        accord(tmp_path, "audit", "archive", "2020-01", *out, ACCORD_AUDIT_RETENTION_DAYS=str(365 * 20)),
        accord(tmp_path, "audit", "archive", "2020-01", *out, ACCORD_AUDIT_RETENTION_DAYS="30"),
    )
    for run in (young, younger):
        assert run.code != 0 and "younger than the retention period (180 days): refused" in run.err, run.err
    assert long_retention.code != 0 and "younger than the retention period (7300 days)" in long_retention.err
    assert too_short.code != 0 and "audit_retention_days" in too_short.err
    assert not (tmp_path / "out").exists()
    assert (await verify(conn, KEY)).intact


async def test_archive_of_an_old_month_without_a_partition_is_refused(database, tmp_path: Path) -> None:
    url, _ = database
    run = await accord(tmp_path, "audit", "archive", "2020-01", "--out", str(tmp_path / "out"),
                       "--database-url", url)
    assert run.code != 0 and "no partition audit_events_2020_01" in run.err


async def old_history(conn: asyncpg.Connection, months: list[date], per_month: int) -> list[int]:
    """A chain whose first events lie in old months, hashed exactly as `append` would have.

    `append` stamps the database clock, so old events cannot be appended today: as the owner we
    create the old partitions and insert correctly linked events there, then move the head.
    """
    await conn.execute("DELETE FROM audit_checkpoints")  # (triggers off: this database is ours)
    await conn.execute("DELETE FROM audit_events")
    prev, seq, last = None, 0, []
    for month in months:
        await conn.execute("SELECT audit_ensure_partition($1)", month)
        for i in range(per_month):
            seq += 1
            at = datetime(month.year, month.month, 3 + i, 9, 30, 0, 123456 + i, tzinfo=timezone.utc)
            prev = forged(prev, seq, at, actor_id="history", actor_name="历史记录 History", action="archive.test",
                          entity_type="cooperation", entity_id=f"old-{seq}", after={"n": seq, "月份": f"{month:%Y-%m}"})
            await insert_row(conn, prev)
        last.append(seq)
    await conn.execute("UPDATE audit_chain_head SET seq = $1, hash = $2", seq, prev["hash"])
    return last


async def test_archive_an_old_month_and_verification_resumes_after_it(database, tmp_path: Path) -> None:
    url, conn = database
    await tamper_session(conn)
    ends = await old_history(conn, [date(2020, 1, 1), date(2020, 2, 1)], per_month=4)
    assert ends == [4, 8]
    await conn.execute("SET session_replication_role = origin")
    run = await accord(tmp_path, "audit", "checkpoint", "--database-url", url)
    assert run.json()["seq"] == 8
    assert (await accord(tmp_path, "audit", "verify", "--database-url", url)).code == 0  # event 9

    # Oldest first: February cannot go while January is still there.
    run = await accord(tmp_path, "audit", "archive", "2020-02", "--out", str(tmp_path / "out"), "--database-url", url)
    assert run.code != 0 and "oldest first" in run.err

    run = await accord(tmp_path, "audit", "archive", "2020-01", "--out", str(tmp_path / "out"), "--database-url", url)
    assert run.code == 0, run.err
    result = run.json()
    export = Path(result["file"])
    assert (result["month"], result["events"], export.name) == ("2020-01", 4, "audit-2020-01.jsonl")
    lines = export.read_bytes().splitlines(keepends=True)
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4]
    assert json.loads(lines[0])["after"]["月份"] == "2020-01"
    assert hashlib.sha256(b"".join(lines)).hexdigest() == result["sha256"]
    archived = await conn.fetchrow("SELECT * FROM audit_archives WHERE month = '2020-01-01'")
    assert (archived["first_seq"], archived["last_seq"], archived["events"]) == (1, 4, 4)
    assert archived["export_sha256"] == result["sha256"]
    assert bytes(archived["last_hash"]).hex() == json.loads(lines[-1])["hash"]
    assert await conn.fetchval("SELECT to_regclass('audit_events_2020_01')") is None
    (event,) = await conn.fetch("SELECT * FROM audit_events WHERE action = 'audit.archived'")
    assert (event["entity_id"], event["after"]["events"], event["after"]["sha256"]) == (
        "audit_events_2020_01", 4, result["sha256"])

    # Verification now starts after the archived month, from its recorded last hash.
    run = await accord(tmp_path, "audit", "verify", "--database-url", url)
    assert run.code == 0, run.out
    assert run.json()["intact"] is True and run.json()["events"] == await conn.fetchval(
        "SELECT count(*) FROM audit_events") - 1  # (minus the verify's own event, appended after)

    # ... and still catches a change in what remains, and a change in the archive record's anchor.
    await tamper_session(conn)
    await conn.execute("UPDATE audit_events SET actor_name = 'Mallory' WHERE seq = 5")
    run = await accord(tmp_path, "audit", "verify", "--database-url", url)
    assert (run.code, run.json()["kind"], run.json()["first_bad_seq"]) == (1, "changed", 5)

    # February can go now.
    await conn.execute("UPDATE audit_events SET actor_name = '历史记录 History' WHERE seq = 5")
    await conn.execute("SET session_replication_role = origin")
    run = await accord(tmp_path, "audit", "archive", "2020-02", "--out", str(tmp_path / "out"), "--database-url", url)
    assert run.code == 0 and run.json()["events"] == 4, run.err
    run = await accord(tmp_path, "audit", "verify", "--database-url", url)
    assert run.code == 0 and run.json()["intact"] is True


async def test_archive_refuses_a_broken_chain(database, tmp_path: Path) -> None:
    url, conn = database
    await tamper_session(conn)
    await old_history(conn, [date(2020, 3, 1)], per_month=3)
    await conn.execute("UPDATE audit_events SET outcome = 'refused' WHERE seq = 2")
    await conn.execute("SET session_replication_role = origin")
    run = await accord(tmp_path, "audit", "archive", "2020-03", "--out", str(tmp_path / "out"), "--database-url", url)
    assert run.code != 0 and "not intact (changed at 2): nothing archived" in run.err
    assert await conn.fetchval("SELECT to_regclass('audit_events_2020_03')") is not None
    assert not (tmp_path / "out").exists()
