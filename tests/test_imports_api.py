"""The import API: upload → preview (nothing written), confirm → the normal workflow actions, audited;
the same file twice creates nothing new; limits and unreadable files."""

from __future__ import annotations

import time

from tests.conftest import API_DEPARTMENT, user_client
from tests.import_support import good_row, import_world, xlsx
from tests.test_api_support import ok

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def upload(http, data: bytes, name: str = "项目清单.xlsx"):
    return await http.post("/imports", files={"file": (name, data, XLSX)})


async def cooperation_count(pool, partner_id: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM cooperations WHERE partner_organization_id = $1", partner_id)


async def test_confirming_a_small_file_opens_cooperations_with_signed_agreements_and_projects(api, pool):
    w = await import_world(api.http)
    rows = [good_row(w, f"电池项目 Battery {w.suffix}"),
            good_row(w, f"电机项目 Motors {w.suffix}", amount="300")]
    preview = ok(await upload(api.http, xlsx(rows)), 201)
    assert preview["status"] == "previewed"
    assert preview["counts"] == {"rows": 2, "valid": 2, "invalid": 0, "existing": 0, "errors": 0}
    assert await cooperation_count(pool, w.company_id) == 0  # nothing written before confirmation

    started = time.perf_counter()
    done = ok(await api.http.post(f"/imports/{preview['id']}/confirm"))
    print(f"\nconfirming 2 rows took {time.perf_counter() - started:.2f} s")
    assert done["status"] == "confirmed"
    assert [(r["row"], r["outcome"]) for r in done["results"]] == [(2, "created"), (3, "created")]

    first = done["results"][0]
    coop = ok(await api.http.get(f"/cooperations/{first['cooperation_id']}"))
    assert coop["stage"] == "in_delivery"
    assert coop["department"] == API_DEPARTMENT
    agreements = sorted(coop["agreements"], key=lambda a: a["kind"])
    assert [(a["kind"], a["status"], a["signed_on"]) for a in agreements] == [
        ("framework", "signed", "2024-03-01"), ("investment", "signed", "2024-06-15")]
    legal = agreements[0]["review_log"][0]
    assert legal["by"].startswith("Accord import")
    assert "imported from 项目清单.xlsx row 2" in legal["comment"]
    assert "imported from 项目清单.xlsx row 2" in coop["negotiation"][0]["summary"].lower()
    [project] = coop["projects"]
    assert project["id"] == first["project_id"]
    assert project["committed_investment"] == "12505000.00"
    assert project["milestones"][0]["due_date"] == "2024-07-15"  # the template, from the investment signing
    second = ok(await api.http.get(f"/projects/{done['results'][1]['project_id']}"))
    assert second["committed_investment"] == "3000000.00"

    # The import's own events (reminders of the template's overdue milestones may come meanwhile).
    events = await pool.fetch("SELECT action, actor_id, user_agent, comment FROM audit_events "
                              "WHERE cooperation_id = $1 AND action NOT LIKE 'notice.%' ORDER BY seq",
                              first["cooperation_id"])
    actions = [e["action"] for e in events]
    assert actions[0] == "cooperation.created"
    assert "project.created" in actions
    assert all(e["user_agent"] == "imported from 项目清单.xlsx row 2" for e in events)
    reviews = [e for e in events if e["actor_id"] == "system:import"]
    assert len(reviews) == 4  # two steps of two agreements, by the import, with the source
    assert all("imported from 项目清单.xlsx row 2" in e["comment"] for e in reviews)
    assert {e["actor_id"] for e in events} == {api.user_id, "system:import"}


async def test_the_same_file_twice_creates_nothing_new(api, pool):
    w = await import_world(api.http)
    data = xlsx([good_row(w, f"Import twice A {w.suffix}"), good_row(w, f"Import twice B {w.suffix}")])
    first = ok(await upload(api.http, data), 201)
    ok(await api.http.post(f"/imports/{first['id']}/confirm"))
    assert await cooperation_count(pool, w.company_id) == 2
    again = ok(await api.http.post(f"/imports/{first['id']}/confirm"))  # a repeated confirmation
    assert [r["outcome"] for r in again["results"]] == ["created", "created"]

    second = ok(await upload(api.http, data, "copy of the list.xlsx"), 201)
    assert second["counts"]["existing"] == 2
    assert [e["id"] for e in second["earlier_imports"]] == [first["id"]]
    done = ok(await api.http.post(f"/imports/{second['id']}/confirm"))
    assert [r["outcome"] for r in done["results"]] == ["existing", "existing"]
    assert done["results"][0]["project_id"] == again["results"][0]["project_id"]
    assert await cooperation_count(pool, w.company_id) == 2


async def test_a_file_with_errors_is_refused_unless_its_valid_rows_are_asked_for(api, pool):
    w = await import_world(api.http)
    bad = good_row(w, f"Bad {w.suffix}", amount=-1)
    preview = ok(await upload(api.http, xlsx([good_row(w, f"Good {w.suffix}"), bad])), 201)
    reason = "negative: an amount must be zero or more"
    assert preview["errors"] == [{"row": 3, "column": "协议投资额（万元）", "reason": reason, "params": {},
                                  "message": reason}]
    refused = await api.http.post(f"/imports/{preview['id']}/confirm")
    assert refused.status_code == 409
    assert await cooperation_count(pool, w.company_id) == 0
    done = ok(await api.http.post(f"/imports/{preview['id']}/confirm", params={"skip_invalid": "true"}))
    assert [(r["row"], r["outcome"]) for r in done["results"]] == [(2, "created"), (3, "skipped")]
    assert await cooperation_count(pool, w.company_id) == 1


async def test_unreadable_too_big_and_someone_elses(app, api, pool):
    assert (await upload(api.http, b"PK\x03\x04 broken")).status_code == 422
    assert (await upload(api.http, b"\x00\xff\x00", "list.csv")).status_code == 422
    too_big = b"a,b\n" + b"x" * (1024 * 1024 + 10)
    assert (await upload(api.http, too_big, "list.csv")).status_code == 413
    missing = await api.http.post("/imports", files={})
    assert missing.status_code == 422

    w = await import_world(api.http)
    preview = ok(await upload(api.http, xlsx([good_row(w)])), 201)
    async with user_client(app, pool, ["liaison_officer"], API_DEPARTMENT) as colleague:
        assert (await colleague.http.get(f"/imports/{preview['id']}")).status_code == 404
        assert (await colleague.http.post(f"/imports/{preview['id']}/confirm")).status_code == 404
    async with user_client(app, pool, ["reviewer"], API_DEPARTMENT) as reviewer:
        assert (await upload(reviewer.http, xlsx([good_row(w)]))).status_code == 403
    assert (await api.http.get("/imports/nope")).status_code == 404


async def test_a_5000_row_file_previews_through_the_api(api, pool):
    w = await import_world(api.http)
    data = xlsx([good_row(w, f"项目 {i} {w.suffix}", amount=i + 0.25) for i in range(5000)])
    started = time.perf_counter()
    preview = ok(await upload(api.http, data), 201)
    print(f"\n5,000-row upload → preview (read, validate, store, answer): {time.perf_counter() - started:.2f} s")
    assert preview["counts"] == {"rows": 5000, "valid": 5000, "invalid": 0, "existing": 0, "errors": 0}
    assert await cooperation_count(pool, w.company_id) == 0
