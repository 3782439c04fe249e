"""The inbox page: a user's notices with links to their project, marking one or all read (PRG)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import API_DEPARTMENT
from tests.test_api_inbox import add_message
from tests.test_api_support import in_delivery
from tests.web_support import signed_in


async def add_project_message(pool, user_id: str, project_id: str, subject: str) -> str:
    """A notice about a real project, as the delivery activity writes it."""
    message_id = await add_message(pool, user_id, subject)
    await pool.execute("UPDATE inbox_messages SET project_id = $2 WHERE id = $1", message_id, project_id)
    return message_id


async def test_the_inbox_shows_a_notice_and_marks_it_read(app, pool, api):
    coop = await in_delivery(api.http, projects=1)
    project_id = coop.project_ids[0]
    async with signed_in(app, pool, ["liaison_officer"], API_DEPARTMENT) as me:
        message_id = await add_project_message(pool, me.user_id, project_id, "里程碑即将到期 Milestone due soon")
        page = await me.get("/inbox")
        assert page.status_code == 200
        assert "里程碑即将到期 Milestone due soon" in page.text
        assert "未读" in page.text
        assert f'href="/projects/{project_id}"' in page.text
        assert f'href="/cooperations/{coop.id}"' in page.text

        answer = await me.submit(page, f"/inbox/{message_id}/read", {"next": "/inbox"})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/inbox"
        after = await me.get("/inbox")
        assert "已标记为已读" in after.text
        assert f'action="/inbox/{message_id}/read"' not in after.text
    read_at = await pool.fetchval("SELECT read_at FROM inbox_messages WHERE id = $1", message_id)
    assert read_at is not None


async def test_mark_all_read_and_the_unread_filter(app, pool):
    async with signed_in(app, pool, ["liaison_officer"], API_DEPARTMENT, language="en") as me:
        for subject in ("first notice", "second notice"):
            await add_message(pool, me.user_id, subject)
        page = await me.get("/inbox?unread=1")
        assert "first notice" in page.text and "second notice" in page.text
        assert "Unread messages: 2" in page.text

        answer = await me.submit(page, "/inbox/read-all", {"next": "/inbox?unread=1"})
        assert answer.status_code == 303 and answer.headers["location"] == "/inbox?unread=1"
        after = await me.get(answer.headers["location"])
        assert "Messages marked as read: 2." in after.text
        assert "No unread messages." in after.text
        unread = await pool.fetchval("SELECT count(*) FROM inbox_messages WHERE user_id = $1 AND read_at IS NULL",
                                     me.user_id)
        assert unread == 0


async def test_someone_elses_message_cannot_be_marked(app, pool):
    async with (signed_in(app, pool, ["liaison_officer"], API_DEPARTMENT) as owner,
                signed_in(app, pool, ["liaison_officer"], API_DEPARTMENT) as other):
        message_id = await add_message(pool, owner.user_id, "private notice")
        page = await other.get("/inbox")
        assert "private notice" not in page.text
        answer = await other.submit(page, f"/inbox/{message_id}/read", {"next": "/inbox"})
        assert answer.status_code == 404
    assert await pool.fetchval("SELECT read_at FROM inbox_messages WHERE id = $1", message_id) is None


async def test_pages_go_to_older_messages_and_a_bad_cursor_shows_the_first_page(app, pool):
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    async with signed_in(app, pool, ["liaison_officer"], API_DEPARTMENT, language="en") as me:
        for i in range(25):
            await add_message(pool, me.user_id, f"notice number {i:02d}", start + timedelta(minutes=i))
        first = await me.get("/inbox")
        assert "notice number 24" in first.text and "notice number 04" not in first.text
        assert "2 Mar 2026 09:24" in first.text  # office time (UTC+8)
        older = first.text.split('before=')[1].split('"')[0]
        second = await me.get(f"/inbox?before={older}")
        assert "notice number 04" in second.text and "notice number 24" not in second.text
        assert "Newest messages" in second.text
        bad = await me.get("/inbox?before=not-a-cursor")
        assert bad.status_code == 200 and "notice number 24" in bad.text
