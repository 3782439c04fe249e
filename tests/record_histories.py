"""Record workflow histories for the replay test (tests/test_workflow_replay.py).

Run from the project root:

    .venv/bin/python -m tests.record_histories

It starts its own embedded PostgreSQL (in a temporary directory) and Temporal dev
server, runs a representative scenario through the real write path and writes each
workflow's history as JSON to tests/histories/<workflow id>[@<label>].json. The
file name carries the workflow id the replayer needs; `@label` distinguishes runs
of the same workflow (continue-as-new).

Re-record only on purpose: the point of the stored histories is that workflow
code changes must keep replaying the histories that production already holds.

Scenario:
  * rec-completed: negotiation, framework agreement with a rejected review step,
    an edit and a second review round, investment agreement, one project with a
    moved milestone, a suspension and resumption, investments; the project
    completes and with it the cooperation.
  * rec-terminated: a second cooperation terminated while its project is open;
    the project is cancelled by the parent's signal.
  * rec-rollover: a cooperation that continues as new after 3 events; both the
    first run (ending in ContinueAsNew) and the following run are recorded.
  * rec-sealed (from v4-documents on): review steps that record the draft version they
    decided on, a framework agreement whose last signature seals its signed original, and an
    investment agreement signed first and sealed afterwards (`seal_signed_original`).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from db.migrate import migrate
from db.pool import create_pool
from domain.cooperation import (AgreementKind, DecideReviewStep, EditAgreement, SealSignedOriginal, SubmitAgreement,
                                TerminateCooperation)
from domain.documents import DocumentKind, DocumentRef
from domain.project import MoveMilestone, ResumeProject, SuspendProject
from runtime.embedded import start_embedded_postgres
from runtime.lifecycle import create_cooperation
from runtime.temporal import build_worker
from tests.test_workflow_lifecycle import (
    COUNSEL,
    FRAMEWORK_SIGNED_ON,
    INVESTMENT_SIGNED_ON,
    LEADER,
    OFFICER,
    Coop,
    approve,
    complete,
    creation_of,
    draft,
    invest,
    meeting,
    new_project,
    register_organizations,
    review,
    sign,
    sign_through,
)

HISTORIES = Path(__file__).parent / "histories"
TASK_QUEUE = "accord-record"


async def open_fixed(client: Client, pool: object, cooperation_id: str,
                     continue_as_new_after: int | None = None) -> Coop:
    """Like tests.test_workflow_lifecycle.open_cooperation, with a fixed id (the file name)."""
    lead_id, lead_name, partner_id, partner_name = await register_organizations(pool)  # type: ignore[arg-type]
    coop = Coop(client, cooperation_id, lead_id, lead_name, partner_id, partner_name)
    await create_cooperation(client, TASK_QUEUE, cooperation_id,
                             creation_of(lead_id, lead_name, partner_id, partner_name), OFFICER,
                             f"create-{cooperation_id}", continue_as_new_after=continue_as_new_after)
    return coop


async def completed_cooperation(client: Client, pool: object) -> dict[str, tuple[Coop, str, str | None]]:
    coop = await open_fixed(client, pool, "rec-completed")
    fw, inv, p1 = coop.fw, coop.inv, coop.pid("p1")
    await coop.act(meeting("neg-1"))
    await coop.act(meeting("visit-1", on=date(2024, 4, 20)))
    # Framework agreement: the leadership step rejects the first round.
    await coop.act(draft(coop, fw, AgreementKind.framework))
    await coop.act(SubmitAgreement(agreement_id=fw))
    await coop.act(approve(fw, "legal_review"), actor=COUNSEL)
    await coop.act(DecideReviewStep(agreement_id=fw, step="leadership_approval", decision="reject",
                                    comment="land price clause needs rework"), actor=LEADER)
    await coop.act(EditAgreement(agreement_id=fw, title="Framework agreement, revised land terms"))
    await review(coop, fw)
    await coop.act(sign(coop, fw, coop.lead_id, FRAMEWORK_SIGNED_ON))
    await coop.act(sign(coop, fw, coop.partner_id, FRAMEWORK_SIGNED_ON))
    await sign_through(coop, inv, AgreementKind.investment, INVESTMENT_SIGNED_ON)
    # One project through delivery.
    await coop.act(new_project(p1, inv, 3))
    await coop.act_project(p1, invest("i1", "120000000.00"))
    await coop.act_project(p1, MoveMilestone(milestone_id=f"{p1}-m2", new_due_date=date(2026, 9, 30),
                                             reason="construction permit delayed"))
    await coop.act_project(p1, SuspendProject(reason="environmental review"))
    await coop.act_project(p1, ResumeProject(comment="environmental review passed"))
    await coop.act_project(p1, complete(f"{p1}-m1"))
    await coop.act_project(p1, complete(f"{p1}-m2", on=date(2025, 6, 1)))
    await coop.act_project(p1, invest("i2", "60000000.50"))
    await coop.act_project(p1, complete(f"{p1}-m3", on=date(2025, 9, 1)))
    assert (await coop.project_handle(p1).result()).status == "completed"
    assert (await asyncio.wait_for(coop.handle().result(), timeout=30)).stage == "completed"
    return {coop.workflow_id: (coop, coop.workflow_id, None),
            f"project-{p1}": (coop, f"project-{p1}", None)}


async def terminated_cooperation(client: Client, pool: object) -> dict[str, tuple[Coop, str, str | None]]:
    coop = await open_fixed(client, pool, "rec-terminated")
    p1 = coop.pid("p1")
    await coop.act(meeting("neg-1"))
    await sign_through(coop, coop.fw, AgreementKind.framework, FRAMEWORK_SIGNED_ON)
    await sign_through(coop, coop.inv, AgreementKind.investment, INVESTMENT_SIGNED_ON)
    await coop.act(new_project(p1, coop.inv, 2))
    await coop.act_project(p1, complete(f"{p1}-m1"))
    await coop.act(TerminateCooperation(reason="partner withdrew after restructuring"))
    assert (await asyncio.wait_for(coop.project_handle(p1).result(), timeout=30)).status == "cancelled"
    assert (await asyncio.wait_for(coop.handle().result(), timeout=30)).stage == "terminated"
    return {coop.workflow_id: (coop, coop.workflow_id, None),
            f"project-{p1}": (coop, f"project-{p1}", None)}


async def rolled_over_cooperation(client: Client, pool: object) -> dict[str, tuple[Coop, str, str | None]]:
    coop = await open_fixed(client, pool, "rec-rollover", continue_as_new_after=3)
    first_run = (await coop.handle().describe()).run_id
    await coop.act(meeting("neg-1"))
    await coop.act(meeting("neg-2", on=date(2024, 4, 2)))
    await coop.act(draft(coop, coop.fw, AgreementKind.framework))
    await coop.act(SubmitAgreement(agreement_id=coop.fw))
    current_run = (await coop.handle().describe()).run_id
    assert current_run != first_run
    return {f"{coop.workflow_id}@run1": (coop, coop.workflow_id, first_run),
            f"{coop.workflow_id}@run2": (coop, coop.workflow_id, current_run)}


def document(agreement_id: str, kind: DocumentKind, version: int) -> DocumentRef:
    """A reference as the API would resolve it (the workflow never reads the document store)."""
    fingerprint = f"{agreement_id}/{kind.value}/{version}".encode().hex()[:64].ljust(64, "0")
    return DocumentRef(document_id=f"doc-{agreement_id}-{kind.value}", version=version, kind=kind,
                       agreement_id=agreement_id, sha256=fingerprint, file_name=f"{kind.value}.pdf", size_bytes=1234)


async def sealed_cooperation(client: Client, pool: object) -> dict[str, tuple[Coop, str, str | None]]:
    coop = await open_fixed(client, pool, "rec-sealed")
    fw, inv = coop.fw, coop.inv
    await coop.act(draft(coop, fw, AgreementKind.framework))
    await coop.act(SubmitAgreement(agreement_id=fw))
    for step, actor in (("legal_review", COUNSEL), ("leadership_approval", LEADER)):
        await coop.act(approve(fw, step).model_copy(update={"document": document(fw, DocumentKind.draft, 2)}),
                       actor=actor)
    original = document(fw, DocumentKind.signed_original, 1)
    await coop.act(sign(coop, fw, coop.lead_id, FRAMEWORK_SIGNED_ON).model_copy(update={"document": original}))
    state = await coop.act(sign(coop, fw, coop.partner_id, FRAMEWORK_SIGNED_ON).model_copy(
        update={"document": original}))
    assert state.agreement(fw).signed_document == original
    await sign_through(coop, inv, AgreementKind.investment, INVESTMENT_SIGNED_ON)
    state = await coop.act(SealSignedOriginal(agreement_id=inv, document=document(inv, DocumentKind.signed_original, 1)))
    assert state.agreement(inv).signed_document is not None
    return {coop.workflow_id: (coop, coop.workflow_id, None)}


async def record(pg_url: str, out_dir: Path) -> list[Path]:
    pool = await create_pool(pg_url)
    async with pool.acquire() as conn:
        await migrate(conn)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=["--log-level", "error"],
    )
    written: list[Path] = []
    try:
        async with build_worker(env.client, pool, TASK_QUEUE):
            recorded = {}
            for scenario in (completed_cooperation, terminated_cooperation, rolled_over_cooperation,
                             sealed_cooperation):
                recorded.update(await scenario(env.client, pool))
            out_dir.mkdir(parents=True, exist_ok=True)
            for name, (_coop, workflow_id, run_id) in recorded.items():
                handle = env.client.get_workflow_handle(workflow_id, run_id=run_id)
                history = await handle.fetch_history()
                path = out_dir / f"{name}.json"
                path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n", encoding="utf-8")
                written.append(path)
    finally:
        await env.shutdown()
        await pool.close()
    return written


def main() -> None:
    """`python -m tests.record_histories LABEL`: record into tests/histories/LABEL/.

    Old folders stay: each holds histories of the workflow code of its time, and all
    of them must keep replaying.
    """
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m tests.record_histories LABEL   (e.g. v3-reminders)")
    tmp = Path(tempfile.mkdtemp(prefix="accord-record-"))
    # atexit runs last-registered first: the embedded server (registered below) stops before this removal.
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    server = start_embedded_postgres(tmp / "pg", "accord_record")
    for path in asyncio.run(record(server.url, HISTORIES / sys.argv[1])):
        print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


if __name__ == "__main__":
    main()
