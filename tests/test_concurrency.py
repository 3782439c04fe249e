"""Optimistic concurrency: ETag on reads and writes, If-Match on every write of a cooperation or project.

A record's ETag is W/"<version>", the workflow's event seq. A write with an If-Match that
is no longer current is a 412 and changes nothing (read model, workflow state, audit); a
current one succeeds and answers with the new ETag. Two writes based on the same version
race inside the workflow: exactly one wins. `If-Match: *` matches any existing record; a
malformed If-Match is a 400.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from api.concurrency import parse_if_match
from api.errors import ApiError
from domain.records import cooperation_workflow_id, project_workflow_id
from tests.test_api_support import (
    REVIEW_DESK,
    Coop,
    audit_count,
    cooperation_body,
    framework_body,
    in_delivery,
    key,
    ok,
    open_cooperation,
    project_body,
    world,
)
from workflows.cooperation import CooperationWorkflow
from workflows.project import ProjectWorkflow


def meeting(summary: str = "a meeting") -> dict[str, Any]:
    return {"kind": "meeting", "occurred_on": "2024-01-05", "place": "Mianyang", "summary": summary}


def investment(amount: str = "1000000.00") -> dict[str, Any]:
    return {"received_on": "2024-07-01", "amount": amount, "source_note": "first tranche"}


def etag_of(response: httpx.Response) -> str:
    tag = response.headers.get("etag")
    assert tag is not None, f"{response.request.method} {response.request.url.path}: no ETag"
    return tag


def stale(response: httpx.Response, saw: int, now: int) -> None:
    assert response.status_code == 412, f"expected 412, got {response.status_code} {response.text}"
    detail = response.json()["detail"]
    expected = (f"someone else changed this record since you loaded it (version {saw}, now {now}); "
                "reload and try again")
    assert detail == expected, f"unexpected message: {detail!r}"


async def cooperation_seq(client: Client, cooperation_id: str) -> int:
    handle = client.get_workflow_handle(cooperation_workflow_id(cooperation_id))
    return (await handle.query(CooperationWorkflow.state)).seq


async def project_seq(client: Client, project_id: str) -> int:
    return (await client.get_workflow_handle(project_workflow_id(project_id)).query(ProjectWorkflow.state)).seq


async def refused_statuses(pool: asyncpg.Pool, cooperation_id: str) -> list[int]:
    rows = await pool.fetch("SELECT after FROM audit_events WHERE cooperation_id = $1 AND outcome = 'refused' "
                            "ORDER BY seq", cooperation_id)
    return [(r["after"] if isinstance(r["after"], dict) else json.loads(r["after"]))["status"] for r in rows]


# ---------------------------------------------------------------- ETag


async def test_cooperation_etag_follows_the_version(api, client: Client) -> None:
    coop = await open_cooperation(api.http)
    read = await api.http.get(coop.path)
    assert read.status_code == 200, f"GET: {read.status_code}"
    assert etag_of(read) == 'W/"1"', f"a new cooperation is version 1, ETag {etag_of(read)}"
    assert await cooperation_seq(client, coop.id) == 1, "workflow seq is not 1"

    written = await api.http.post(f"{coop.path}/negotiation-events", json=meeting())
    assert written.status_code == 200, f"write: {written.status_code}"
    assert etag_of(written) == 'W/"2"', f"the write answered ETag {etag_of(written)}"
    assert written.json()["seq"] == 2, "the state's seq is not the ETag's version"
    assert etag_of(await api.http.get(coop.path)) == 'W/"2"', "GET does not show the new version"


async def test_create_answers_with_an_etag(api) -> None:
    created = await api.http.post("/cooperations", json=cooperation_body(await world(api.http)))
    assert created.status_code == 201, f"create: {created.status_code}"
    assert etag_of(created) == 'W/"1"', f"create answered ETag {etag_of(created)}"


async def test_project_etag_follows_the_version(api, client: Client) -> None:
    coop = await in_delivery(api.http, projects=1)
    (project_id,) = coop.project_ids
    read = await api.http.get(f"/projects/{project_id}")
    assert read.status_code == 200, f"GET project: {read.status_code}"
    assert etag_of(read) == 'W/"0"', f"a new project is version 0, ETag {etag_of(read)}"

    written = await api.http.post(f"/projects/{project_id}/investments", json=investment(),
                                  headers={"If-Match": etag_of(read)})
    assert written.status_code == 200, f"write with the current If-Match: {written.status_code} {written.text}"
    assert etag_of(written) == 'W/"1"', f"the write answered ETag {etag_of(written)}"
    assert etag_of(await api.http.get(f"/projects/{project_id}")) == 'W/"1"', "GET does not show the new version"
    assert await project_seq(client, project_id) == 1, "workflow seq is not 1"


# ---------------------------------------------------------------- If-Match on cooperations


async def test_stale_if_match_on_a_cooperation_changes_nothing(api, client: Client, pool: asyncpg.Pool) -> None:
    coop = await open_cooperation(api.http)
    loaded = etag_of(await api.http.get(coop.path))  # W/"1"
    ok(await api.http.post(f"{coop.path}/negotiation-events", json=meeting("someone else")))  # now version 2

    before = await api.http.get(coop.path)
    rows = await audit_count(pool, coop.id)
    answer = await api.http.post(f"{coop.path}/negotiation-events", json=meeting("mine"),
                                 headers={"If-Match": loaded})
    stale(answer, saw=1, now=2)

    after = await api.http.get(coop.path)
    assert after.json() == before.json(), "the read model changed"
    assert etag_of(after) == 'W/"2"', f"the version moved: {etag_of(after)}"
    assert await audit_count(pool, coop.id) == rows, "an audit row of an accepted action was written"
    state = await client.get_workflow_handle(cooperation_workflow_id(coop.id)).query(CooperationWorkflow.state)
    assert state.seq == 2, f"workflow seq is {state.seq}"
    assert [e.summary for e in state.negotiation] == ["someone else"], "the workflow state changed"
    assert 412 in await refused_statuses(pool, coop.id), "the refused attempt was not audited"


async def test_current_if_match_succeeds_with_the_new_etag(api, client: Client) -> None:
    coop = await open_cooperation(api.http)
    current = etag_of(await api.http.get(coop.path))
    answer = await api.http.post(f"{coop.path}/negotiation-events", json=meeting(), headers={"If-Match": current})
    assert answer.status_code == 200, f"current If-Match: {answer.status_code} {answer.text}"
    assert etag_of(answer) == 'W/"2"', f"new ETag {etag_of(answer)}"
    assert await cooperation_seq(client, coop.id) == 2, "the workflow did not move on"

    # Strong form of the same tag, and the wildcard, match too.
    strong = await api.http.post(f"{coop.path}/negotiation-events", json=meeting(), headers={"If-Match": '"2"'})
    assert strong.status_code == 200, f'If-Match "2": {strong.status_code} {strong.text}'
    anything = await api.http.post(f"{coop.path}/negotiation-events", json=meeting(), headers={"If-Match": "*"})
    assert anything.status_code == 200, f"If-Match *: {anything.status_code} {anything.text}"
    assert etag_of(anything) == 'W/"4"', f"new ETag {etag_of(anything)}"


async def test_if_match_on_a_missing_record_is_a_404(api) -> None:
    for tag in ("*", 'W/"1"'):
        answer = await api.http.post("/cooperations/no-such-cooperation/negotiation-events", json=meeting(),
                                     headers={"If-Match": tag})
        assert answer.status_code == 404, f"If-Match {tag} on a missing record: {answer.status_code}"


async def test_malformed_if_match_is_a_400(api, client: Client, pool: asyncpg.Pool) -> None:
    coop = await open_cooperation(api.http)
    rows = await audit_count(pool, coop.id)
    for tag in ("1", "abc", 'W/"x"', '"-1"', 'W/"1", W/"2"', "W/1", '"' + "9" * 40 + '"'):
        answer = await api.http.post(f"{coop.path}/negotiation-events", json=meeting(), headers={"If-Match": tag})
        assert answer.status_code == 400, f"If-Match {tag!r}: {answer.status_code} {answer.text}"
        assert "If-Match must be one ETag" in answer.json()["detail"], f"unclear message: {answer.text}"
    assert await audit_count(pool, coop.id) == rows, "a malformed If-Match changed the record"
    assert await cooperation_seq(client, coop.id) == 1, "the workflow moved on"


async def test_every_cooperation_write_checks_if_match(api, client: Client) -> None:
    """A few different writes (agreement, review, signature, project, termination) refuse a stale version."""
    coop = await in_delivery(api.http)
    version = await cooperation_seq(client, coop.id)
    stale_tag = f'W/"{version - 1}"'
    assert coop.investment_id is not None
    http, reviewer = api.http, REVIEW_DESK["legal_review"]  # a review decision comes from its decider
    attempts = [
        (http, "POST", "/agreements", framework_body(coop.w)),
        (http, "PATCH", f"/agreements/{coop.investment_id}", {"title": "Stale title"}),
        (http, "POST", f"/agreements/{coop.investment_id}/submit", None),
        (reviewer, "POST", f"/agreements/{coop.investment_id}/review-steps/legal_review/approve", None),
        (http, "POST", "/projects", project_body(coop.investment_id)),
        (http, "POST", "/terminate", {"reason": "stale termination"}),
    ]
    for who, method, sub, body in attempts:
        answer = await who.request(method, coop.path + sub, json=body, headers={"If-Match": stale_tag})
        assert answer.status_code == 412, f"{method} {sub}: {answer.status_code} {answer.text}"
        stale(answer, saw=version - 1, now=version)
    assert await cooperation_seq(client, coop.id) == version, "a stale write changed the cooperation"
    assert (await api.http.get(coop.path)).json()["stage"] == "in_delivery", "the cooperation changed stage"


# ---------------------------------------------------------------- If-Match on projects


async def test_stale_if_match_on_a_project_changes_nothing(api, client: Client, pool: asyncpg.Pool) -> None:
    coop = await in_delivery(api.http, projects=1)
    (project_id,) = coop.project_ids
    path = f"/projects/{project_id}"
    loaded = etag_of(await api.http.get(path))  # W/"0"
    ok(await api.http.post(f"{path}/investments", json=investment("500.00")))  # someone else: version 1

    handle = client.get_workflow_handle(project_workflow_id(project_id))
    before = ok(await api.http.get(path))
    state_before = await handle.query(ProjectWorkflow.state)
    for sub, body in (("/investments", investment("700.00")), ("/suspend", {"reason": "stale suspension"}),
                      ("/cancel", {"reason": "stale cancellation"}),
                      ("/milestones", {"name": "Stale milestone", "due_date": "2030-01-01"})):
        stale(await api.http.post(path + sub, json=body, headers={"If-Match": loaded}), saw=0, now=1)
    after = await api.http.get(path)
    assert after.json() == before, "the project's read model changed"
    assert etag_of(after) == 'W/"1"', f"the version moved: {etag_of(after)}"
    state = await handle.query(ProjectWorkflow.state)
    assert state == state_before, "the project's workflow state changed"
    assert state.seq == 1, f"workflow seq is {state.seq}"
    assert [str(e.amount) for e in state.investments] == ["500.00"], "an investment was recorded"


# ---------------------------------------------------------------- races


async def test_two_writes_with_the_same_if_match_one_wins(api, client: Client) -> None:
    rounds = 3
    coop = await open_cooperation(api.http)
    for i in range(rounds):
        tag = etag_of(await api.http.get(coop.path))
        answers = await asyncio.gather(
            api.http.post(f"{coop.path}/negotiation-events", json=meeting(f"round {i} A"), headers={"If-Match": tag}),
            api.http.post(f"{coop.path}/negotiation-events", json=meeting(f"round {i} B"), headers={"If-Match": tag}),
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 412], f"round {i}: statuses {statuses}"
    state = await client.get_workflow_handle(cooperation_workflow_id(coop.id)).query(CooperationWorkflow.state)
    assert state.seq == 1 + rounds, f"workflow seq {state.seq}, expected {1 + rounds}"
    assert len(state.negotiation) == rounds, f"{len(state.negotiation)} events recorded, expected {rounds}"


async def test_two_project_writes_with_the_same_if_match_one_wins(api, client: Client) -> None:
    coop = await in_delivery(api.http, projects=1)
    (project_id,) = coop.project_ids
    path = f"/projects/{project_id}"
    tag = etag_of(await api.http.get(path))
    answers = await asyncio.gather(*[
        api.http.post(f"{path}/investments", json=investment(f"{100 + n}.00"), headers={"If-Match": tag})
        for n in range(3)
    ])
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 412, 412], f"statuses {statuses}"
    assert await project_seq(client, project_id) == 1, "more than one write was applied"


async def test_a_retry_with_the_same_idempotency_key_is_not_stale(api) -> None:
    coop: Coop = await open_cooperation(api.http)
    tag = etag_of(await api.http.get(coop.path))
    headers = {"If-Match": tag, "Idempotency-Key": key()}
    first = await api.http.post(f"{coop.path}/negotiation-events", json=meeting(), headers=headers)
    assert first.status_code == 200, f"first: {first.status_code}"
    again = await api.http.post(f"{coop.path}/negotiation-events", json=meeting(), headers=headers)
    assert again.status_code == 200, f"the retry is answered as the first was, not {again.status_code}"
    assert again.content == first.content, "the retry got a different answer"


# ---------------------------------------------------------------- parsing


def test_if_match_parsing() -> None:
    assert parse_if_match(None) is None, "no header"
    assert parse_if_match("*") is None, "wildcard"
    assert parse_if_match(' W/"12" ') == 12, "weak tag"
    assert parse_if_match('"12"') == 12, "strong tag"
    for bad in ("", "12", 'W/"1.5"', 'W/"1",W/"2"', "w/\"1\""):
        with pytest.raises(ApiError):
            parse_if_match(bad)
