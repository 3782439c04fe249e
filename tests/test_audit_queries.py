"""Auditors' reads: search with filters and cursor pages, CSV and JSON Lines exports, verification, checkpoints.

One cooperation is driven by the liaison officer of the `api` fixture (also an auditor, who
reads the trail), with its review steps decided by a reviewer and a leader of the story's
own (never by the drafter), and by a colleague of a department of their own (a counsel of
a legal affairs office), who decides two legal reviews in a row. It has Chinese
text in its comments, a refused attempt and a project; every query is held against the
rows in PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from db import audit_chain
from db.audit_queries import COLUMNS
from runtime.checkpoints import checkpoint_once
from tests.conftest import API_DEPARTMENT, AUDIT_KEY, LEGAL_DEPARTMENT, new_id, user_client
from tests.test_api_support import framework_body, investment_body, ok, world
from tests.test_audit_support import db_now

REVIEW_DECISIONS = {"agreement.review_approved", "agreement.review_rejected"}
REFUSED_APPROVAL = "api:POST /cooperations/{cooperation_id}/agreements/{agreement_id}/review-steps/{step}/approve"


@dataclass
class Story:
    cooperation_id: str
    project_id: str
    suffix: str
    rejection: str  # a Chinese rejection comment, unique to this story
    colleague_id: str
    colleague_department: str
    colleague_actions: list[str]
    colleague_from: datetime  # the database clock just before the colleague's first action
    colleague_until: datetime  # ... and just after the last one
    deciders: tuple[str, str]  # the story's reviewer and leader, who decide the other review steps


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def story(app, api, pool: asyncpg.Pool) -> AsyncIterator[Story]:
    suffix = new_id()
    department = f"法制办 Legal Affairs Office {suffix}"
    async with (user_client(app, pool, ["reviewer"], department, f"王审查 Counsel Wang {suffix}") as colleague,
                user_client(app, pool, ["reviewer"], LEGAL_DEPARTMENT, f"Counsel Li {suffix}") as reviewer,
                user_client(app, pool, ["leader"], API_DEPARTMENT, f"Director Sun {suffix}") as leader):
        http = api.http
        w = await world(http)
        coop = ok(await http.post("/cooperations", json={
            "title": f"知识产权运营中心 IP operations centre {suffix}", "lead_organization_id": w.gov_id,
            "partner_organization_id": w.company_id, "liaison_officer": "Officer Chen"}), 201)
        cid = coop["cooperation_id"]
        base = f"/cooperations/{cid}"
        ok(await http.post(f"{base}/negotiation-events", json={
            "kind": "meeting", "occurred_on": "2024-02-01", "summary": "双方就大数据中心落户绵阳达成初步意向"}))
        state = ok(await http.post(f"{base}/agreements", json=framework_body(w)))
        fid = state["agreements"][0]["agreement_id"]
        ok(await http.post(f"{base}/agreements/{fid}/submit"))
        ok(await reviewer.http.post(f"{base}/agreements/{fid}/review-steps/legal_review/approve"))
        rejection = f"第三条投资金额需要明确 {suffix}"
        ok(await leader.http.post(f"{base}/agreements/{fid}/review-steps/leadership_approval/reject",
                                  json={"comment": rejection}))
        # The leader approves too soon: the rejection returned the agreement to draft.
        refused = await leader.http.post(f"{base}/agreements/{fid}/review-steps/leadership_approval/approve")
        assert refused.status_code == 409

        # Both agreements wait for legal review; the colleague decides both, one after the other:
        # their own actor id and department.
        ok(await http.post(f"{base}/agreements/{fid}/submit"))
        state = ok(await http.post(f"{base}/agreements", json=investment_body(w)))
        iid = next(a["agreement_id"] for a in state["agreements"] if a["kind"] == "investment")
        ok(await http.post(f"{base}/agreements/{iid}/submit"))
        colleague_from = await db_now(pool)
        for aid in (fid, iid):
            ok(await colleague.http.post(f"{base}/agreements/{aid}/review-steps/legal_review/approve",
                                         json={"comment": "同意"}))
        colleague_until = await db_now(pool)

        ok(await leader.http.post(f"{base}/agreements/{fid}/review-steps/leadership_approval/approve"))
        for org in (w.gov_id, w.company_id):
            ok(await http.post(f"{base}/agreements/{fid}/signatures",
                               json={"organization_id": org, "signed_on": "2024-03-01"}))
        ok(await leader.http.post(f"{base}/agreements/{iid}/review-steps/leadership_approval/approve"))
        for org in (w.park_id, w.company_id):
            ok(await http.post(f"{base}/agreements/{iid}/signatures",
                               json={"organization_id": org, "signed_on": "2024-06-15"}))
        state = ok(await http.post(f"{base}/projects", json={
            "agreement_id": iid, "title": f"西南区域总部 {suffix}", "committed_investment": "50000000.00",
            "responsible_department": "Park", "responsible_officer": "Li",
            # Due years ahead: no reminder (a system event) joins the story while its tests read it.
            "milestones": [{"name": "Registration", "due_date": "2031-07-15"}]}), 201)
        pid = state["projects"][0]["project_id"]
        ok(await http.post(f"/projects/{pid}/milestones/m1/move",
                           json={"new_due_date": "2031-09-30", "reason": "等待土地证 waiting for the land title"}))
        ok(await http.post(f"/projects/{pid}/investments",
                           json={"received_on": "2024-07-20", "amount": "1000000.00", "source_note": "首笔资金"}))
        yield Story(cid, pid, suffix, rejection, colleague.user_id, department,
                    ["agreement.review_approved", "agreement.review_approved"],
                    colleague_from, colleague_until, (reviewer.user_id, leader.user_id))


async def search(http: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    return ok(await http.get("/audit", params=params))


async def all_pages(http: httpx.AsyncClient, limit: int, **params: Any) -> tuple[list[dict[str, Any]], list[int]]:
    items: list[dict[str, Any]] = []
    sizes: list[int] = []
    cursor = params.pop("cursor", None)
    for _ in range(1000):
        page = await search(http, limit=limit, **params, **({"cursor": cursor} if cursor else {}))
        items += page["items"]
        sizes.append(len(page["items"]))
        cursor = page["next_cursor"]
        if cursor is None:
            return items, sizes
        assert cursor == page["items"][-1]["seq"]
    raise AssertionError("paging did not end")


async def rows_where(pool: asyncpg.Pool, where: str, *args: Any) -> list[asyncpg.Record]:
    return await pool.fetch(f"SELECT * FROM audit_events WHERE {where} ORDER BY seq DESC", *args)


def seqs(items: list[dict[str, Any]]) -> list[int]:
    return [i["seq"] for i in items]


# ---------------------------------------------------------------- filters


async def test_filter_by_cooperation_newest_first_as_stored(api, pool: asyncpg.Pool, story: Story) -> None:
    page = await search(api.http, cooperation_id=story.cooperation_id, limit=500)
    rows = await rows_where(pool, "cooperation_id = $1", story.cooperation_id)
    assert seqs(page["items"]) == [r["seq"] for r in rows] and page["next_cursor"] is None
    assert seqs(page["items"]) == sorted(seqs(page["items"]), reverse=True)
    actions = [i["action"] for i in reversed(page["items"])]
    assert actions[:3] == ["cooperation.created", "negotiation.recorded", "agreement.drafted"]
    assert "agreement.review_rejected" in actions and "project.created" in actions
    # The JSON answer is the stored row: microseconds and all.
    for item, row in zip(page["items"], rows, strict=True):
        assert datetime.fromisoformat(item["recorded_at"]) == row["recorded_at"]
        assert item["event_id"] == str(row["event_id"]) and item["before"] == row["before"]
        assert item["after"] == row["after"] and item["actor_name"] == row["actor_name"]
        assert set(item) == set(COLUMNS)  # no hashes, no state snapshot in search answers


async def test_filter_by_project(api, pool: asyncpg.Pool, story: Story) -> None:
    page = await search(api.http, project_id=story.project_id)
    assert [i["action"] for i in page["items"]] == ["investment.recorded", "milestone.moved", "project.created"]
    assert all(i["project_id"] == story.project_id for i in page["items"])
    moved = page["items"][1]
    assert (moved["before"], moved["after"], moved["comment"]) == (
        {"due_date": "2031-07-15"}, {"due_date": "2031-09-30"}, "等待土地证 waiting for the land title")


async def test_filter_by_actor_and_department(api, pool: asyncpg.Pool, story: Story) -> None:
    page = await search(api.http, actor_id=story.colleague_id, cooperation_id=story.cooperation_id)
    assert [i["action"] for i in reversed(page["items"])] == story.colleague_actions
    assert {i["actor_department"] for i in page["items"]} == {story.colleague_department}
    by_department = await search(api.http, actor_department=story.colleague_department)
    assert seqs(by_department["items"]) == seqs(page["items"])
    # The liaison officer's events of the same cooperation and the review desk's are the others.
    mine = await search(api.http, actor_id=api.user_id, cooperation_id=story.cooperation_id, limit=500)
    desk = [await search(api.http, actor_id=d, cooperation_id=story.cooperation_id, limit=500)
            for d in story.deciders]
    everything = await search(api.http, cooperation_id=story.cooperation_id, limit=500)
    system = [i for i in everything["items"]
              if i["actor_id"] not in (api.user_id, story.colleague_id, *story.deciders)]
    assert system == []  # nothing closed yet: no system events
    assert sorted(seqs(mine["items"]) + seqs(page["items"]) + [s for d in desk for s in seqs(d["items"])]) == \
        sorted(seqs(everything["items"]))
    # Separation of duties, as the trail shows it: the drafter decided no review step.
    assert not {i["action"] for i in mine["items"]} & REVIEW_DECISIONS
    reviewer, leader = desk
    assert [i["action"] for i in reversed(reviewer["items"])] == ["agreement.review_approved"]
    assert [(i["action"], i["outcome"]) for i in reversed(leader["items"])] == [
        ("agreement.review_rejected", "succeeded"), (REFUSED_APPROVAL, "refused"),
        ("agreement.review_approved", "succeeded"), ("agreement.review_approved", "succeeded")]


async def test_filter_by_action_outcome_and_entity(api, pool: asyncpg.Pool, story: Story) -> None:
    (rejected,) = (await search(api.http, cooperation_id=story.cooperation_id,
                                action="agreement.review_rejected"))["items"]
    assert rejected["comment"] == story.rejection
    (refusal,) = (await search(api.http, cooperation_id=story.cooperation_id, outcome="refused"))["items"]
    assert refusal["action"] == REFUSED_APPROVAL
    # The leader's too-early approval (the drafter may not decide review steps at all).
    assert refusal["error"] == "agreement is draft, not in review" and refusal["actor_id"] == story.deciders[1]
    assert (await search(api.http, cooperation_id=story.cooperation_id, outcome="failed"))["items"] == []
    succeeded = await search(api.http, cooperation_id=story.cooperation_id, outcome="succeeded", limit=500)
    everything = await search(api.http, cooperation_id=story.cooperation_id, limit=500)
    assert len(succeeded["items"]) == len(everything["items"]) - 1
    agreement = await search(api.http, entity_type="agreement", entity_id=rejected["entity_id"], limit=500)
    assert all(i["entity_id"] == rejected["entity_id"] for i in agreement["items"])
    assert rejected["seq"] in seqs(agreement["items"]) and refusal["seq"] in seqs(agreement["items"])


async def test_filter_by_time(api, pool: asyncpg.Pool, story: Story) -> None:
    window = await search(api.http, cooperation_id=story.cooperation_id,
                          since=story.colleague_from.isoformat(), until=story.colleague_until.isoformat())
    assert [i["action"] for i in reversed(window["items"])] == story.colleague_actions
    # The same instants in Beijing time select the same events.
    beijing = timedelta(hours=8)
    from datetime import timezone
    tz = timezone(beijing)
    same = await search(api.http, cooperation_id=story.cooperation_id,
                        since=story.colleague_from.astimezone(tz).isoformat(),
                        until=story.colleague_until.astimezone(tz).isoformat())
    assert seqs(same["items"]) == seqs(window["items"])
    # since is inclusive, until exclusive, to the microsecond.
    first = window["items"][-1]
    at = datetime.fromisoformat(first["recorded_at"])
    assert first["seq"] in seqs((await search(api.http, cooperation_id=story.cooperation_id,
                                              since=at.isoformat()))["items"])
    before = await search(api.http, cooperation_id=story.cooperation_id, until=at.isoformat(), limit=500)
    assert first["seq"] not in seqs(before["items"])
    assert max(seqs(before["items"])) < first["seq"]
    after_microsecond = await search(api.http, cooperation_id=story.cooperation_id,
                                     until=(at + timedelta(microseconds=1)).isoformat(), limit=500)
    assert seqs(after_microsecond["items"])[0] == first["seq"]
    # A window in the past holds nothing of this story.
    assert (await search(api.http, cooperation_id=story.cooperation_id, until="2020-01-01T00:00:00+08:00"))[
        "items"] == []


async def test_free_text_in_chinese_and_english(api, pool: asyncpg.Pool, story: Story) -> None:
    (hit,) = (await search(api.http, q=f"投资金额需要明确 {story.suffix}"))["items"]
    assert hit["action"] == "agreement.review_rejected" and hit["comment"] == story.rejection
    # Text inside the before/after values: the negotiation summary, the milestone's move reason.
    (meeting,) = (await search(api.http, q="大数据中心落户绵阳", cooperation_id=story.cooperation_id))["items"]
    assert meeting["action"] == "negotiation.recorded"
    (moved,) = (await search(api.http, q="等待土地证", project_id=story.project_id))["items"]
    assert moved["action"] == "milestone.moved"
    # Case-insensitive, across actor names.
    colleague = await search(api.http, q=f"counsel WANG {story.suffix.upper()}", limit=500)
    theirs = [i for i in colleague["items"] if i["actor_id"] == story.colleague_id]
    assert [i["action"] for i in reversed(theirs)] == story.colleague_actions
    # The other hits name them in their text: the leader's approvals that follow hold the review
    # steps, each with who decided it (now someone else than the one acting, as the duties are separated).
    others = [i for i in colleague["items"] if i["actor_id"] != story.colleague_id]
    assert others and {i["actor_id"] for i in others} == {story.deciders[1]}
    assert all(f"Counsel Wang {story.suffix}" in json.dumps(i["after"], ensure_ascii=False) for i in others)
    # LIKE wildcards are literal: the suffix is always followed by some character, never by "%" or "_".
    assert (await search(api.http, q=story.suffix, cooperation_id=story.cooperation_id))["items"]
    assert (await search(api.http, q=f"{story.suffix}%", cooperation_id=story.cooperation_id))["items"] == []
    assert (await search(api.http, q=f"{story.suffix}_", cooperation_id=story.cooperation_id))["items"] == []
    assert (await search(api.http, q=f"不存在 {uuid.uuid4().hex}"))["items"] == []


async def test_cursor_pages_see_every_event_once(api, pool: asyncpg.Pool, story: Story) -> None:
    everything = (await search(api.http, cooperation_id=story.cooperation_id, limit=500))["items"]
    n = len(everything)
    assert n > 10
    for limit in (1, 3, n - 1, n, n + 1):
        items, sizes = await all_pages(api.http, limit, cooperation_id=story.cooperation_id)
        assert seqs(items) == seqs(everything), limit
        assert all(s == limit for s in sizes[:-1]) and 0 < sizes[-1] <= limit
    # A cursor keeps its place while new events arrive ahead of it.
    first = await search(api.http, cooperation_id=story.cooperation_id, limit=4)
    ok(await api.http.post(f"/cooperations/{story.cooperation_id}/negotiation-events",
                           json={"kind": "note", "occurred_on": "2024-08-01", "summary": "新的进展"}))
    rest, _ = await all_pages(api.http, 4, cooperation_id=story.cooperation_id, cursor=first["next_cursor"])
    assert seqs(rest) == seqs(everything)[4:]
    newest = (await search(api.http, cooperation_id=story.cooperation_id, limit=1))["items"][0]
    assert newest["action"] == "negotiation.recorded" and newest["seq"] > everything[0]["seq"]


FILTERS = [
    {"until": "2024-01-01T00:00:00+08:00", "since": "2024-01-01T00:00:00+08:00"},
    {"until": "2024-01-01T00:00:00+08:00", "since": "2024-06-01T00:00:00+08:00"},
    {"outcome": "maybe"}, {"q": ""}, {"since": "yesterday"}, {"cooperation_id": "bad id"}, {"q": "x" * 201},
    {"q": "a\x00b"}, {"format": "xlsx"},
]
PAGING = [{"limit": 0}, {"limit": 501}, {"cursor": 0}, {"cursor": "abc"}]


@pytest.mark.parametrize("params", FILTERS + PAGING)
async def test_bad_filters_are_422(api, params: dict[str, Any]) -> None:
    paths = ["/audit/export"] if "format" in params else ["/audit"] if params in PAGING else ["/audit", "/audit/export"]
    for path in paths:
        response = await api.http.get(path, params=params)
        assert response.status_code == 422, (path, params, response.text)
        assert response.json()["detail"][0]["loc"][0] == "query"


# ---------------------------------------------------------------- exports


async def test_csv_export_opens_in_excel_and_matches_the_search(api, pool: asyncpg.Pool, story: Story) -> None:
    searched = (await search(api.http, cooperation_id=story.cooperation_id, limit=500))["items"]
    response = await api.http.get("/audit/export", params={"cooperation_id": story.cooperation_id, "format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="accord-audit.csv"'
    raw = response.content
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads UTF-8
    assert not raw[3:].startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    header, rows = table[0], table[1:]
    assert tuple(header) == COLUMNS
    assert len(rows) == len(searched)
    exported = [dict(zip(header, r, strict=True)) for r in rows]
    assert [int(e["seq"]) for e in exported] == seqs(searched)
    for e, s in zip(exported, searched, strict=True):
        assert json.loads(e["before"]) == s["before"] and json.loads(e["after"]) == s["after"]
        assert datetime.fromisoformat(e["recorded_at"]) == datetime.fromisoformat(s["recorded_at"])
        assert (e["action"], e["actor_name"], e["event_id"]) == (s["action"], s["actor_name"], s["event_id"])
        assert e["comment"] == (s["comment"] or "") and e["error"] == (s["error"] or "")
    # Chinese text survives: the rejection comment and the negotiation summary inside `after`.
    assert story.rejection in {e["comment"] for e in exported}
    assert any("大数据中心落户绵阳" in e["after"] for e in exported)
    assert "大数据中心落户绵阳" in raw.decode("utf-8")  # not \u-escaped


async def test_jsonl_export_parses_line_by_line(api, pool: asyncpg.Pool, story: Story) -> None:
    searched = (await search(api.http, cooperation_id=story.cooperation_id, limit=500))["items"]
    response = await api.http.get("/audit/export", params={"cooperation_id": story.cooperation_id,
                                                           "format": "jsonl"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-ndjson"
    text = response.content.decode("utf-8")
    assert text.endswith("\n") and "大数据中心落户绵阳" in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == len(searched)
    for line, s in zip(lines, searched, strict=True):
        assert set(line) == set(COLUMNS)
        assert {k: v for k, v in line.items() if k not in ("recorded_at", "occurred_at")} == {
            k: v for k, v in s.items() if k not in ("recorded_at", "occurred_at")}
        assert datetime.fromisoformat(line["recorded_at"]) == datetime.fromisoformat(s["recorded_at"])


async def test_an_empty_export_is_a_header_or_nothing(api) -> None:
    nobody = {"actor_id": new_id("nobody-")}
    csv_text = (await api.http.get("/audit/export", params=nobody)).content.decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(csv_text))) == [list(COLUMNS)]
    assert (await api.http.get("/audit/export", params={**nobody, "format": "jsonl"})).content == b""


async def test_a_large_export_streams_every_row(api, pool: asyncpg.Pool, story: Story) -> None:
    """More than one 64 kB chunk of CSV and 500-line chunk of JSON Lines: nothing lost at the seams."""
    expected = await pool.fetchval("SELECT count(*) FROM audit_events WHERE action = 'audit.searched'")
    if expected < 600:
        for _ in range(600 - expected):
            await api.http.get("/audit", params={"actor_id": new_id("padding-"), "limit": 1})
    # Every search before this export is counted (the export's own event is audit.exported).
    expected = await pool.fetchval("SELECT count(*) FROM audit_events WHERE action = 'audit.searched'")
    for fmt in ("csv", "jsonl"):
        response = await api.http.get("/audit/export", params={"action": "audit.searched", "format": fmt})
        text = response.content.decode("utf-8-sig")
        if fmt == "csv":
            got = [r[0] for r in list(csv.reader(io.StringIO(text)))[1:]]
            assert len(response.content) > 64_000
        else:
            got = [json.loads(line)["seq"] for line in text.splitlines()]
        assert len(got) >= expected and len(set(got)) == len(got)


# ---------------------------------------------------------------- verification and checkpoints


async def test_verify_answers_intact_on_the_shared_database(api, pool: asyncpg.Pool, story: Story) -> None:
    await checkpoint_once(pool, AUDIT_KEY)
    verdict = ok(await api.http.get("/audit/verify"))
    assert verdict["intact"] is True, verdict
    assert (verdict["kind"], verdict["first_bad_seq"], verdict["detail"]) == (None, None, None)
    assert verdict["checkpoints"] >= 1
    total = await pool.fetchval("SELECT count(*) FROM audit_events")
    assert 0 < verdict["events"] <= total  # events appended meanwhile may not be in its snapshot


async def test_checkpoints_are_listed_and_signed(api, pool: asyncpg.Pool, story: Story) -> None:
    signed = await checkpoint_once(pool, AUDIT_KEY)
    listed = ok(await api.http.get("/audit/checkpoints"))
    assert listed and [c["seq"] for c in listed] == sorted(c["seq"] for c in listed)
    if signed is not None:
        assert listed[-1]["seq"] == signed
    for c in listed:
        chain_hash = bytes.fromhex(c["hash"])
        assert len(chain_hash) == 32 and c["key_id"] == audit_chain.key_id(AUDIT_KEY)
        assert bytes.fromhex(c["signature"]) == audit_chain.checkpoint_signature(AUDIT_KEY, c["seq"], chain_hash)
        stored = await pool.fetchval("SELECT hash FROM audit_events WHERE seq = $1", c["seq"])
        assert bytes(stored) == chain_hash  # the checkpoint signs the event's own hash
        datetime.fromisoformat(c["created_at"])
    # Nothing appended since the last checkpoint: signing again does nothing.
    async with pool.acquire() as conn:
        head = await conn.fetchval("SELECT seq FROM audit_chain_head")
        if head == listed[-1]["seq"]:
            assert await audit_chain.write_checkpoint(conn, AUDIT_KEY) is None
