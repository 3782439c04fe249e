"""The same workflow code on Temporal's time-skipping test server (the Java test server).

Small on purpose: the time-skipping server is for short tests run one at a time.
It gets its own worker on its own task queue, writing to the session's PostgreSQL.

Finding: the time-skipping server (temporal-test-server 1.40.0) accepts
update-with-start, so `runtime.lifecycle.create_cooperation` works unchanged there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta

import asyncpg
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain.cooperation import AgreementKind, SubmitAgreement
from tests.test_workflow_lifecycle import (
    FRAMEWORK_SIGNED_ON,
    OFFICER,
    assert_audit_trail,
    draft,
    meeting,
    open_cooperation,
    read_model,
    refused,
    review_rest,
    sign,
)
from tests.time_skipping import time_skipping_worker

TIME_SKIPPING_QUEUE = "accord-time-skipping"


@pytest_asyncio.fixture(loop_scope="session")
async def skipping_client(pool: asyncpg.Pool) -> AsyncIterator[tuple[WorkflowEnvironment, Client]]:
    async with time_skipping_worker(pool, TIME_SKIPPING_QUEUE) as env:
        yield env, env.client


async def test_framework_agreement_signed_on_time_skipping_server(
    skipping_client: tuple[WorkflowEnvironment, Client], pool: asyncpg.Pool
) -> None:
    env, client = skipping_client
    assert env.supports_time_skipping

    coop, state = await open_cooperation(client, pool, task_queue=TIME_SKIPPING_QUEUE)
    assert (state.stage, state.seq) == ("negotiating", 1)
    created_at = state.created_at
    assert created_at is not None

    # The workflow clock is the server's: an event dated ten days ahead is in the future now ...
    ahead = date.today() + timedelta(days=10)
    await refused(coop.act(meeting("visit", on=ahead)), "Invalid", "in the future")
    # ... and no longer once the server has skipped twelve days.
    await env.sleep(timedelta(days=12))
    state = await coop.act(meeting("visit", on=ahead))
    assert [e.event_id for e in state.negotiation] == ["visit"]
    assert state.updated_at is not None and state.updated_at - created_at >= timedelta(days=12)

    fw = coop.fw
    await coop.act(draft(coop, fw, AgreementKind.framework))
    state = await coop.act(SubmitAgreement(agreement_id=fw))
    assert state.agreement(fw).status == "in_review"
    await refused(coop.act(sign(coop, fw, coop.lead_id, FRAMEWORK_SIGNED_ON)), "Refused", "only after")
    await review_rest(coop, fw)
    await coop.act(sign(coop, fw, coop.lead_id, FRAMEWORK_SIGNED_ON))
    state = await coop.act(sign(coop, fw, coop.partner_id, FRAMEWORK_SIGNED_ON))
    assert (state.stage, state.agreement(fw).status, state.seq) == ("framework_signed", "signed", 8)
    assert state.agreement(fw).signatures[0].recorded_by == OFFICER.name

    queried = await coop.state()
    assert queried.model_dump() == state.model_dump()
    rm = await read_model(pool, coop.cooperation_id)
    assert (rm["cooperation"][0]["stage"], rm["cooperation"][0]["version"]) == ("framework_signed", 8)
    assert [(a["id"], a["status"]) for a in rm["agreements"]] == [(fw, "signed")]
    assert len(rm["signatures"]) == 2
    await assert_audit_trail(pool, coop.workflow_id, 8)
