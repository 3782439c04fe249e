"""Administration pages: users, departments and reminder policies through their forms, admins only."""

from __future__ import annotations

from db.users import ensure_department
from tests.conftest import API_DEPARTMENT, new_id
from tests.test_api_support import create_org
from tests.web_support import signed_in


async def user_row(pool, username: str):
    return await pool.fetchrow(
        "SELECT u.id, u.display_name, u.department, u.disabled_at, "
        "array(SELECT role FROM user_roles r WHERE r.user_id = u.id ORDER BY role) AS roles "
        "FROM users u WHERE username = $1", username)


async def changes_by(pool, user_id: str) -> list[str]:
    """The accepted changes a user made (sign-ins and refused attempts left out)."""
    rows = await pool.fetch("SELECT action FROM audit_events WHERE actor_id = $1 AND outcome = 'succeeded' "
                            "AND action NOT LIKE 'auth.%' ORDER BY seq", user_id)
    return [r["action"] for r in rows]


async def test_an_admin_creates_a_department_and_a_user_through_the_forms(app, pool):
    parent, child = new_id("市政府-"), new_id("投资促进局-")
    username = new_id("li.wei.")
    async with signed_in(app, pool, ["admin"], None) as me:
        page = await me.get("/admin/departments")
        assert page.status_code == 200
        made = await me.submit(page, "/admin/departments", {"name": parent, "parent": ""})
        assert made.status_code == 303 and made.headers["location"] == "/admin/departments"
        page = await me.get("/admin/departments")
        assert f"部门 {parent} 已创建" in page.text
        made = await me.submit(page, "/admin/departments", {"name": child, "parent": parent})
        assert made.status_code == 303

        form = await me.get("/admin/users/new")
        assert form.status_code == 200 and f'<option value="{child}">' in form.text
        created = await me.submit(form, "/admin/users", {
            "username": username, "display_name": "李伟", "department": child,
            "roles": ["liaison_officer", "leader"], "email": "li.wei@mianyang.gov.cn", "language": "zh"})
        assert created.status_code == 303 and created.headers["location"].startswith("/admin/users/")
        shown = await me.get(created.headers["location"])
        assert f"用户 {username} 已创建" in shown.text and "李伟" in shown.text

        listed = await me.get(f"/admin/users?department={child}")
        assert username in listed.text
        tree = await me.get("/admin/departments")
        assert tree.text.index(parent) < tree.text.index(child)
    row = await user_row(pool, username)
    assert row is not None and row["department"] == child and row["roles"] == ["leader", "liaison_officer"]
    assert await pool.fetchval("SELECT parent FROM departments WHERE name = $1", child) == parent
    assert await changes_by(pool, me.user_id) == ["department.created", "department.created", "user.created"]


async def test_a_bad_user_form_keeps_the_typed_values_and_shows_the_field_errors(app, pool):
    async with pool.acquire() as conn:
        await ensure_department(conn, API_DEPARTMENT)
    async with signed_in(app, pool, ["admin"], None, language="en") as me:
        form = await me.get("/admin/users/new")
        answer = await me.submit(form, "/admin/users", {
            "username": "bad name", "display_name": "王芳 Wang Fang", "department": API_DEPARTMENT,
            "email": "not an email", "language": "zh"})
        assert answer.status_code == 422
        assert 'value="bad name"' in answer.text and 'value="王芳 Wang Fang"' in answer.text
        assert 'value="not an email"' in answer.text
        assert '<p class="field-error" id="e-username">Letters, digits, dots, dashes and underscores only.</p>' \
            in answer.text
        assert 'id="e-roles">This field is required.' in answer.text
        assert 'id="e-email">Enter one email address' in answer.text
        assert f'<option value="{API_DEPARTMENT}" selected>' in answer.text
    assert await user_row(pool, "bad name") is None


async def test_a_taken_username_and_a_department_loop_are_said_next_to_the_field(app, pool):
    top, below = new_id("top-"), new_id("below-")
    async with signed_in(app, pool, ["admin"], None, language="en") as me:
        page = await me.get("/admin/departments")
        await me.submit(page, "/admin/departments", {"name": top, "parent": ""})
        page = await me.get("/admin/departments")
        await me.submit(page, "/admin/departments", {"name": below, "parent": top})

        page = await me.get("/admin/departments")
        again = await me.submit(page, "/admin/departments", {"name": top, "parent": ""})
        assert again.status_code == 409 and 'id="e-name">A department of this name exists.' in again.text

        page = await me.get("/admin/departments")
        loop = await me.submit(page, "/admin/departments/move", {"department": top, "new_parent": below})
        assert loop.status_code == 409
        assert 'id="e-new_parent">A department cannot sit under itself' in loop.text
        assert f'<option value="{below}" selected>' in loop.text

        form = await me.get("/admin/users/new")
        taken = await me.submit(form, "/admin/users", {"username": me.username, "display_name": "Someone",
                                                       "department": top, "roles": "auditor", "language": "en"})
        assert taken.status_code == 409 and 'id="e-username">This username is taken.' in taken.text
    assert await pool.fetchval("SELECT parent FROM departments WHERE name = $1", top) is None


async def test_an_admin_changes_roles_and_disables_an_account(app, pool):
    async with (signed_in(app, pool, ["auditor"], None) as other,
                signed_in(app, pool, ["admin"], None, language="en") as me):
        page = await me.get(f"/admin/users/{other.user_id}")
        assert page.status_code == 200
        changed = await me.submit(page, f"/admin/users/{other.user_id}/roles", {"roles": ["auditor", "leader"]})
        assert changed.status_code == 303
        page = await me.get(changed.headers["location"])
        assert "The roles are saved." in page.text
        disabled = await me.submit(page, f"/admin/users/{other.user_id}/disable", {})
        assert disabled.status_code == 303
        assert (await other.get("/inbox")).status_code == 303  # signed out at once

        own = await me.get(f"/admin/users/{me.user_id}")
        refused = await me.submit(own, f"/admin/users/{me.user_id}/roles", {"roles": ["auditor"]})
        assert refused.status_code == 409 and "You cannot remove your own administrator role" in refused.text
    row = await user_row(pool, other.username)
    assert row["roles"] == ["auditor", "leader"] and row["disabled_at"] is not None
    assert (await user_row(pool, me.username))["roles"] == ["admin"]


async def test_someone_who_is_not_an_admin_cannot_post_the_admin_forms(app, pool):
    name, username = new_id("dept-"), new_id("user-")
    async with signed_in(app, pool, ["admin"], None) as admin:
        users_form = await admin.get("/admin/users/new")
        departments_form = await admin.get("/admin/departments")
    async with signed_in(app, pool, ["leader", "liaison_officer"], API_DEPARTMENT) as me:
        assert (await me.get("/admin/users")).status_code == 403
        assert (await me.get("/admin/departments")).status_code == 403
        home = await me.get("/")
        user = await me.submit(home, "/admin/users", {
            "username": username, "display_name": "X", "department": API_DEPARTMENT, "roles": "admin",
            "language": "zh", "form_key": new_id()})
        assert user.status_code == 403 and "只有系统管理员" in user.text
        department = await me.submit(home, "/admin/departments", {"name": name, "parent": "",
                                                                  "form_key": new_id()})
        assert department.status_code == 403
        roles = await me.submit(home, f"/admin/users/{me.user_id}/roles", {"roles": "admin", "form_key": new_id()})
        assert roles.status_code == 403
        # Another user's page and form key do not help: the CSRF token is the session's.
        stolen = await me.http.post("/admin/users", data={"csrf_token": "x", "username": username},
                                    headers={"Origin": "http://accord.test"})
        assert stolen.status_code == 403
        assert users_form.status_code == 200 and departments_form.status_code == 200
    assert await user_row(pool, username) is None
    assert await pool.fetchval("SELECT count(*) FROM departments WHERE name = $1", name) == 0
    assert (await user_row(pool, me.username))["roles"] == ["leader", "liaison_officer"]


async def test_an_admin_sets_an_organization_policy_and_a_leader_reads_it(app, pool, api):
    org = await create_org(api.http, new_id("绵阳市人民政府-"), "government")
    async with signed_in(app, pool, ["admin"], None, language="en") as me:
        listing = await me.get(f"/admin/policies?q={org['name']}")
        assert listing.status_code == 200 and org["name"] in listing.text and "The office default" in listing.text
        page = await me.get(f"/admin/policies/{org['id']}")
        assert page.status_code == 200 and 'value="30, 7, 1"' in page.text

        bad = await me.submit(page, f"/admin/policies/{org['id']}", {
            "before_working_days": "10, 十", "on_due_date": "on", "overdue_every_days": "5", "recipient": "owner",
            "escalation-0-after_working_days": "3", "escalation-0-recipient": "",
            "escalation-1-after_working_days": "", "escalation-1-recipient": "",
            "escalation-2-after_working_days": "", "escalation-2-recipient": "",
            "escalation-3-after_working_days": "", "escalation-3-recipient": ""})
        assert bad.status_code == 422
        assert 'value="10, 十"' in bad.text and 'id="e-before_working_days">Enter a whole number.' in bad.text
        assert 'id="e-escalation-0-recipient">Choose one of the options.' in bad.text

        page = await me.get(f"/admin/policies/{org['id']}")
        twice = await me.submit(page, f"/admin/policies/{org['id']}", {
            "before_working_days": "7, 7", "overdue_every_days": "", "recipient": "owner",
            "escalation-0-after_working_days": "", "escalation-0-recipient": "",
            "escalation-1-after_working_days": "", "escalation-1-recipient": "",
            "escalation-2-after_working_days": "", "escalation-2-recipient": "",
            "escalation-3-after_working_days": "", "escalation-3-recipient": ""})
        assert twice.status_code == 422 and "List each number of working days once." in twice.text

        page = await me.get(f"/admin/policies/{org['id']}")
        saved = await me.submit(page, f"/admin/policies/{org['id']}", {
            "name": "园区项目", "before_working_days": "15，5、1", "on_due_date": "on", "overdue_every_days": "",
            "recipient": "liaison_officer", "note": "按管委会要求",
            "escalation-0-after_working_days": "", "escalation-0-recipient": "",
            "escalation-1-after_working_days": "2", "escalation-1-recipient": "department_leader",
            "escalation-2-after_working_days": "", "escalation-2-recipient": "",
            "escalation-3-after_working_days": "", "escalation-3-recipient": ""})
        assert saved.status_code == 303 and saved.headers["location"] == f"/admin/policies/{org['id']}"
        page = await me.get(saved.headers["location"])
        assert "The reminder policy is saved as a new version." in page.text
        assert "15, 5, 1 working days before" in page.text and "按管委会要求" in page.text
        assert "No repeats" in page.text
    stored = await pool.fetchrow("SELECT version, policy, created_by FROM reminder_policies "
                                 "WHERE scope = 'organization' AND scope_id = $1", org["id"])
    assert stored["version"] == 1 and stored["policy"]["before_working_days"] == [15, 5, 1]
    assert stored["policy"]["overdue_every_days"] is None
    assert stored["policy"]["escalation"] == [{"after_working_days": 2, "recipient": "department_leader"}]
    assert await changes_by(pool, me.user_id) == ["reminder_policy.set"]

    async with signed_in(app, pool, ["leader"], API_DEPARTMENT, language="en") as leader:
        assert (await leader.get("/admin")).headers["location"] == "/admin/policies"
        page = await leader.get(f"/admin/policies/{org['id']}")
        assert page.status_code == 200 and "15, 5, 1 working days before" in page.text
        assert f'action="/admin/policies/{org["id"]}"' not in page.text
        refused = await leader.submit(page, f"/admin/policies/{org['id']}", {
            "before_working_days": "1", "recipient": "owner", "form_key": new_id()})
        assert refused.status_code == 403
    assert await pool.fetchval("SELECT count(*) FROM reminder_policies WHERE scope_id = $1", org["id"]) == 1
