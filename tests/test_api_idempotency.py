"""Idempotency-Key: a retried POST or PATCH is applied once and answered with the same response.

The second request with the same key and the same body gets the stored status and
body byte for byte, plus `Idempotent-Replayed: true`; the records and the audit
trail show one action. The same key with a different body is a 422. A refusal is
an answer too: its retry gets the same 409, even if the action would now succeed.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import httpx
import pytest_asyncio

from tests.conftest import API_DEPARTMENT, new_id, user_client
from tests.test_api_support import (
    REVIEW_DESK,
    audit_count,
    cooperation_body,
    framework_body,
    in_delivery,
    investment_body,
    key,
    ok,
    open_cooperation,
    world,
)


def same_answer(first: httpx.Response, second: httpx.Response) -> None:
    assert second.status_code == first.status_code
    assert second.content == first.content
    assert second.headers["content-type"] == first.headers["content-type"]
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"


async def test_negotiation_event_retried_is_recorded_once(api, pool: asyncpg.Pool) -> None:
    coop = await open_cooperation(api.http)
    rows = await audit_count(pool, coop.id)
    k = key()
    body = {"kind": "meeting", "occurred_on": "2024-01-05", "place": "Mianyang", "summary": "first meeting"}
    first = await api.http.post(f"{coop.path}/negotiation-events", json=body, headers={"Idempotency-Key": k})
    second = await api.http.post(f"{coop.path}/negotiation-events", json=body, headers={"Idempotency-Key": k})
    assert first.status_code == 200
    same_answer(first, second)
    assert len(second.json()["negotiation"]) == 1
    assert await pool.fetchval("SELECT count(*) FROM negotiation_events WHERE cooperation_id = $1", coop.id) == 1
    assert await audit_count(pool, coop.id) == rows + 1
    assert len((await coop.get())["negotiation"]) == 1
    # A third time, still the same.
    third = await api.http.post(f"{coop.path}/negotiation-events", json=body, headers={"Idempotency-Key": k})
    same_answer(first, third)
    # Without a key, the same body is a new event.
    ok(await api.http.post(f"{coop.path}/negotiation-events", json=body))
    assert await pool.fetchval("SELECT count(*) FROM negotiation_events WHERE cooperation_id = $1", coop.id) == 2


async def test_organization_retried_is_created_once(api, pool: asyncpg.Pool) -> None:
    name = f"博奥中恒 Boao Zhongheng {new_id()}"
    k = key()
    first = await api.http.post("/organizations", json={"name": name, "kind": "company"},
                                headers={"Idempotency-Key": k})
    second = await api.http.post("/organizations", json={"name": name, "kind": "company"},
                                 headers={"Idempotency-Key": k})
    assert first.status_code == 201  # a replay of a creation is still a 201, not a 409 "exists"
    same_answer(first, second)
    org_id = first.json()["id"]
    assert await pool.fetchval("SELECT count(*) FROM organizations WHERE lower(name) = lower($1)", name) == 1
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE entity_id = $1", org_id) == 1
    # A person, too.
    k = key()
    people = [await api.http.post(f"/organizations/{org_id}/people", json={"name": "Chen Dong", "title": "CPO"},
                                  headers={"Idempotency-Key": k}) for _ in range(2)]
    same_answer(*people)
    assert await pool.fetchval("SELECT count(*) FROM people WHERE organization_id = $1", org_id) == 1


async def test_same_key_different_body_is_422(api, pool: asyncpg.Pool) -> None:
    coop = await open_cooperation(api.http)
    k = key()
    ok(await api.http.post(f"{coop.path}/negotiation-events", json={"kind": "meeting", "occurred_on": "2024-01-05"},
                           headers={"Idempotency-Key": k}))
    rows = await audit_count(pool, coop.id)
    before = await coop.get()
    for method, path, body in [
        ("POST", f"{coop.path}/negotiation-events", {"kind": "meeting", "occurred_on": "2024-01-06"}),
        ("POST", f"{coop.path}/negotiation-events", {"kind": "note", "occurred_on": "2024-01-05"}),
        ("POST", f"{coop.path}/terminate", {"reason": "a different action entirely"}),
        ("PATCH", f"{coop.path}/agreements/whatever", {"title": "x"}),
    ]:
        r = await api.http.request(method, path, json=body, headers={"Idempotency-Key": k})
        assert r.status_code == 422, r.text
        (error,) = r.json()["detail"]
        assert error["loc"] == ["header", "Idempotency-Key"] and "different request" in error["msg"]
    # The query string is part of the request, too.
    r = await api.http.post(f"{coop.path}/negotiation-events?x=1", json={"kind": "meeting", "occurred_on": "2024-01-05"},
                            headers={"Idempotency-Key": k})
    assert r.status_code == 422
    assert await audit_count(pool, coop.id) == rows
    assert await coop.get() == before
    assert before["stage"] == "negotiating"


async def test_cooperation_creation_retried_yields_one_cooperation(api, pool: asyncpg.Pool) -> None:
    w = await world(api.http)
    officer = f"Officer Retry {new_id()}"
    body = cooperation_body(w, liaison_officer=officer)
    k = key()
    first = await api.http.post("/cooperations", json=body, headers={"Idempotency-Key": k})
    second = await api.http.post("/cooperations", json=body, headers={"Idempotency-Key": k})
    assert first.status_code == 201
    same_answer(first, second)
    cid = first.json()["cooperation_id"]
    assert second.json()["cooperation_id"] == cid
    assert await pool.fetchval("SELECT count(*) FROM cooperations WHERE liaison_officer = $1", officer) == 1
    assert await pool.fetchval("SELECT id FROM cooperations WHERE liaison_officer = $1", officer) == cid
    assert await audit_count(pool, cid) == 1
    # A new key opens a second cooperation with the same body.
    third = ok(await api.http.post("/cooperations", json=body, headers={"Idempotency-Key": key()}), 201)
    assert third["cooperation_id"] != cid
    assert await pool.fetchval("SELECT count(*) FROM cooperations WHERE liaison_officer = $1", officer) == 2


async def test_refused_action_retried_gets_the_same_409(api, pool: asyncpg.Pool) -> None:
    coop = await open_cooperation(api.http)
    fid = await coop.draft(framework_body(coop.w))
    await coop.post(f"/agreements/{fid}/submit")
    k = key()
    leader = REVIEW_DESK["leadership_approval"]  # who decides this step: the refusal is the state's, not access
    path = f"{coop.path}/agreements/{fid}/review-steps/leadership_approval/approve"
    first = await leader.post(path, headers={"Idempotency-Key": k})
    assert first.status_code == 409 and "legal_review" in first.json()["detail"]
    rows = await audit_count(pool, coop.id)
    second = await leader.post(path, headers={"Idempotency-Key": k})
    same_answer(first, second)

    # Now the step is current: a retry with the old key still answers the stored 409 and does not approve.
    await coop.decide(fid, "legal_review")
    third = await leader.post(path, headers={"Idempotency-Key": k})
    same_answer(first, third)
    detail = await coop.get()
    assert [s["status"] for s in detail["agreements"][0]["review_steps"]] == ["approved", "pending"]
    assert await audit_count(pool, coop.id) == rows + 1  # only the legal_review approval
    # With a fresh key the approval goes through.
    ok(await leader.post(path, headers={"Idempotency-Key": key()}))
    assert (await coop.get())["agreements"][0]["status"] == "approved"


async def test_validation_error_and_404_are_replayed_too(api, pool: asyncpg.Pool) -> None:
    coop = await open_cooperation(api.http)
    k = key()
    body = {"kind": "meeting", "occurred_on": "not a date"}
    first = await api.http.post(f"{coop.path}/negotiation-events", json=body, headers={"Idempotency-Key": k})
    assert first.status_code == 422
    same_answer(first, await api.http.post(f"{coop.path}/negotiation-events", json=body,
                                           headers={"Idempotency-Key": k}))
    k = key()
    first = await api.http.post(f"{coop.path}/agreements/nope/submit", headers={"Idempotency-Key": k})
    assert first.status_code == 404
    same_answer(first, await api.http.post(f"{coop.path}/agreements/nope/submit", headers={"Idempotency-Key": k}))
    assert await audit_count(pool, coop.id) == 1


async def test_project_actions_retried_apply_once(api, pool: asyncpg.Pool) -> None:
    coop = await in_delivery(api.http, projects=1)
    pid = coop.project_ids[0]
    k = key()
    tranche = {"received_on": "2024-07-01", "amount": "0.10", "source_note": "first tranche"}
    first = await api.http.post(f"/projects/{pid}/investments", json=tranche, headers={"Idempotency-Key": k})
    second = await api.http.post(f"/projects/{pid}/investments", json=tranche, headers={"Idempotency-Key": k})
    same_answer(first, second)
    assert first.json()["realized_investment"] == "0.10"
    assert await pool.fetchval("SELECT count(*) FROM investments WHERE project_id = $1", pid) == 1
    assert await pool.fetchval("SELECT realized_investment FROM projects WHERE id = $1", pid) == Decimal("0.10")

    k = key()
    move = {"new_due_date": "2030-01-01", "reason": "land approval delayed"}
    answers = [await api.http.post(f"/projects/{pid}/milestones/site/move", json=move,
                                   headers={"Idempotency-Key": k}) for _ in range(2)]
    same_answer(*answers)
    project = ok(await api.http.get(f"/projects/{pid}"))
    site = next(m for m in project["milestones"] if m["id"] == "site")
    assert len(site["moves"]) == 1

    k = key()
    added = [await api.http.post(f"/projects/{pid}/milestones", json={"name": "Extra", "due_date": "2031-01-01"},
                                 headers={"Idempotency-Key": k}) for _ in range(2)]
    same_answer(*added)
    assert len(ok(await api.http.get(f"/projects/{pid}"))["milestones"]) == 7
    # Reminders of the overdue template milestones may land meanwhile (notice.*): not staff actions.
    assert await pool.fetchval("SELECT count(*) FROM audit_events WHERE project_id = $1 "
                               "AND action NOT LIKE 'notice.%'", pid) == 1 + 3


async def test_agreement_draft_and_edit_retried_apply_once(api, pool: asyncpg.Pool) -> None:
    coop = await open_cooperation(api.http)
    k = key()
    drafts = [await api.http.post(f"{coop.path}/agreements", json=framework_body(coop.w),
                                  headers={"Idempotency-Key": k}) for _ in range(2)]
    same_answer(*drafts)
    (agreement,) = drafts[0].json()["agreements"]  # a second draft would be a 409 (one framework only)
    fid = agreement["agreement_id"]
    k = key()
    edits = [await api.http.patch(f"{coop.path}/agreements/{fid}", json={"title": "Revised"},
                                  headers={"Idempotency-Key": k}) for _ in range(2)]
    same_answer(*edits)
    assert edits[0].json()["agreements"][0]["revision"] == 2
    assert (await coop.get())["agreements"][0]["revision"] == 2
    assert await pool.fetchval("SELECT count(*) FROM agreements WHERE cooperation_id = $1", coop.id) == 1
    assert await audit_count(pool, coop.id) == 3  # created, drafted, edited


async def test_project_creation_retried_yields_one_project(api, pool: asyncpg.Pool) -> None:
    coop = await in_delivery(api.http)
    k = key()
    body = {"agreement_id": coop.investment_id, "title": "HQ", "committed_investment": "1000.00",
            "responsible_department": "Park", "responsible_officer": "Li"}
    answers = [await api.http.post(f"{coop.path}/projects", json=body, headers={"Idempotency-Key": k})
               for _ in range(2)]
    assert answers[0].status_code == 201
    same_answer(*answers)
    assert await pool.fetchval("SELECT count(*) FROM projects WHERE cooperation_id = $1", coop.id) == 1
    assert len((await coop.get())["projects"]) == 1


async def test_concurrent_retries_apply_once(api, pool: asyncpg.Pool) -> None:
    coop = await open_cooperation(api.http)
    k = key()
    body = {"kind": "note", "occurred_on": "2024-01-05", "summary": "sent three times at once"}
    answers = await asyncio.gather(*[
        api.http.post(f"{coop.path}/negotiation-events", json=body, headers={"Idempotency-Key": k})
        for _ in range(3)])
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 409}, statuses
    for r in answers:
        if r.status_code == 409:
            assert "still in progress" in r.json()["detail"]
    assert await pool.fetchval("SELECT count(*) FROM negotiation_events WHERE cooperation_id = $1", coop.id) == 1
    # Once the first has finished, a retry is a replay.
    replay = await api.http.post(f"{coop.path}/negotiation-events", json=body, headers={"Idempotency-Key": k})
    assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
    assert await audit_count(pool, coop.id) == 2


@pytest_asyncio.fixture(loop_scope="session")
async def other_user(app, pool: asyncpg.Pool):
    """A second liaison officer of the same department: both may record the cooperation's negotiation."""
    async with user_client(app, pool, ["liaison_officer"], API_DEPARTMENT, "Officer Li") as user:
        yield user


async def test_keys_belong_to_their_user(api, other_user, pool: asyncpg.Pool) -> None:
    coop = await open_cooperation(api.http)
    k = key()
    body = {"kind": "meeting", "occurred_on": "2024-01-05"}
    mine = await api.http.post(f"{coop.path}/negotiation-events", json=body, headers={"Idempotency-Key": k})
    theirs = await other_user.http.post(f"{coop.path}/negotiation-events", json=body, headers={"Idempotency-Key": k})
    assert mine.status_code == theirs.status_code == 200
    assert "idempotent-replayed" not in theirs.headers
    assert len(theirs.json()["negotiation"]) == 2
    assert [e["recorded_by"] for e in theirs.json()["negotiation"]] == ["Liaison Officer Test", "Officer Li"]
    # Each user's retry replays their own answer.
    same_answer(theirs, await other_user.http.post(f"{coop.path}/negotiation-events", json=body,
                                                   headers={"Idempotency-Key": k}))
    same_answer(mine, await api.http.post(f"{coop.path}/negotiation-events", json=body,
                                          headers={"Idempotency-Key": k}))
    audit = ok(await api.http.get(f"{coop.path}/audit"))
    assert [a["actor_id"] for a in audit if a["action"] == "negotiation.recorded"] == [api.user_id,
                                                                                      other_user.user_id]


async def test_unauthenticated_request_does_not_use_up_the_key(app, api, pool: asyncpg.Pool) -> None:
    coop = await open_cooperation(api.http)
    k = key()
    body = {"kind": "meeting", "occurred_on": "2024-01-05"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://accord.test/api/v1",
                                 headers={"Authorization": "Bearer acc_wrong"}) as anonymous:
        r = await anonymous.post(f"{coop.path}/negotiation-events", json=body, headers={"Idempotency-Key": k})
        assert r.status_code == 401
    r = await api.http.post(f"{coop.path}/negotiation-events", json=body, headers={"Idempotency-Key": k})
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers
    assert len(r.json()["negotiation"]) == 1


async def test_retry_after_the_state_moved_on_still_replays(api, pool: asyncpg.Pool) -> None:
    """The replay is the answer of the time: later actions do not leak into it."""
    coop = await in_delivery(api.http)
    k = key()
    body = investment_body(coop.w, title="Second investment agreement")
    first = await api.http.post(f"{coop.path}/agreements", json=body, headers={"Idempotency-Key": k})
    assert first.status_code == 200
    await coop.post("/negotiation-events", {"kind": "note", "occurred_on": "2024-07-01"})
    second = await api.http.post(f"{coop.path}/agreements", json=body, headers={"Idempotency-Key": k})
    same_answer(first, second)
    assert len((await coop.get())["agreements"]) == 3


async def test_a_feed_url_is_applied_once_but_not_stored_for_replay(api, pool: asyncpg.Pool) -> None:
    """A calendar feed's URL is a credential of which only a hash is kept: a retry with the same
    key must not reveal it again, and the idempotency store must not hold it."""
    key = new_id("feed-key-")
    first = await api.http.post("/calendar-feeds", json={"scope": "me"}, headers={"Idempotency-Key": key})
    again = await api.http.post("/calendar-feeds", json={"scope": "me"}, headers={"Idempotency-Key": key})
    assert first.status_code == 201 and again.status_code == 201
    secret = first.json()["url"].rsplit("/", 1)[1].removesuffix(".ics")
    assert secret not in again.text and "shown only once" in again.text
    stored = await pool.fetchval("SELECT response_body FROM idempotency_keys WHERE key = $1", key)
    assert stored is not None and secret.encode() not in bytes(stored)
    mine = await api.http.get("/calendar-feeds")
    assert sum(1 for f in mine.json() if f["id"] == first.json()["id"]) == 1
