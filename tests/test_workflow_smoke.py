from datetime import date
import uuid

from domain.audit import Actor
from domain.cooperation import CreateCooperation, RecordNegotiation, NegotiationEvent
from runtime.lifecycle import create_cooperation, act_on_cooperation
from tests.conftest import TASK_QUEUE


async def test_smoke(client, pool):
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO organizations (id, name, kind, created_by) VALUES ('g1','Gov','government','t'), ('c1','Co','company','t') ON CONFLICT DO NOTHING")
    actor = Actor(user_id="u1", name="Tester")
    cid = uuid.uuid4().hex
    st = await create_cooperation(client, TASK_QUEUE, cid, CreateCooperation(title="T", lead_organization_id="g1", lead_organization_name="Gov", partner_organization_id="c1", partner_organization_name="Co", liaison_officer="Li"), actor, "r1")
    assert st.seq == 1
    st = await act_on_cooperation(client, cid, actor, RecordNegotiation(event=NegotiationEvent(event_id="e1", kind="meeting", occurred_on=date(2017, 11, 1))), "r2")
    assert st.seq == 2
    async with pool.acquire() as conn:
        print(await conn.fetch("select action, before, after from audit_events where cooperation_id=$1", cid))
