"""`accord documents verify`: every stored document version read back and checked.

For a scheduled check (cron, a Kubernetes CronJob) or an audit: each version's bytes are read
from the document store, their SHA-256 recomputed and compared with the recorded one and with
every place the record sealed it (api/routes/documents.py `verify_version`, the same check the
API's verify answers). The run itself is one audit event with its counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import asyncpg

from api.routes.documents import Verification, verify_version
from db.audit_chain import AuditEvent, append
from documents.storage import BlobStore


@dataclass
class Report:
    checked: int = 0
    counts: Counter = field(default_factory=Counter)
    problems: list[Verification] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        parts = ", ".join(f"{n} {state}" for state, n in sorted(self.counts.items()))
        sealed = sum(1 for p in self.problems if p.status == "intact")
        extra = f"; {sealed} intact but sealed elsewhere with another fingerprint" if sealed else ""
        return f"{self.checked} document versions checked: {parts or 'none'}{extra}"


async def verify_all(pool: asyncpg.Pool, store: BlobStore, cooperation_ids: list[str] | None = None) -> Report:
    report = Report()
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM document_versions WHERE $1::text[] IS NULL OR cooperation_id = ANY($1) "
            "ORDER BY cooperation_id, document_id, version", cooperation_ids)
        for row in rows:
            result = await verify_version(conn, store, row["cooperation_id"], row)
            report.checked += 1
            report.counts[result.status] += 1
            if not result.ok:
                report.problems.append(result)
        async with conn.transaction():
            await append(conn, AuditEvent(
                actor_id="system", actor_name="accord documents verify", actor_role="system", auth_method="cli",
                action="documents.verified", entity_type="document_store", entity_id=store.description[:200],
                after={"checked": report.checked, **report.counts, "problems": [
                    {"document_id": p.document_id, "version": p.version, "status": p.status} for p in report.problems]},
                outcome="succeeded" if report.ok else "failed"))
    return report
