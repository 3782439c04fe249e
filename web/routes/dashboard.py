"""The dashboard (GET /): what needs the signed-in user's attention in the departments they see.

Scoped like the API's reads: the departments of `domain.access.visible_departments`, filtered
in SQL (db/dashboard.py) and by row-level security (`queries.limit_view`). An admin, who sees
no business record, gets empty sections.

* cooperations by stage, as a funnel (web/charts.stage_funnel), each stage linking to the list;
* open milestones of running projects: the overdue ones, and those due in the next 30 days;
* committed against realized investment of the largest projects (web/charts.investment_bars);
* the user's latest unread notices;
* recent activity: the latest accepted lifecycle actions (web/labels.ACTIONS) from the audit
  trail, on the cooperations and projects the user sees.

Recent activity comes from the audit trail for every role, not only auditors: anyone who sees
a cooperation may read its audit trail already (GET /api/v1/cooperations/{id}/audit), and the
dashboard shows less than that: who did which lifecycle action on which record, and when, the
facts the records' own pages show. Source addresses, before/after values, refused attempts and
the trail's own searches never appear. For that reason opening the dashboard is not recorded
as a search of the audit trail, which would add an event at every visit of the home page.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response

from api.services import office_today
from db import dashboard as reads
from db import inbox, queries
from domain import access
from web import charts, labels
from web.pages import render
from web.session import Viewer, services_of, viewer

router = APIRouter()

DUE_WITHIN = timedelta(days=30)
MILESTONES_SHOWN = 20
PROJECTS_CHARTED = 10
NOTICES_SHOWN = 5
ACTIVITY_SHOWN = 10


@router.get("/")
async def dashboard(request: Request) -> Response:
    who = await viewer(request)
    today = office_today()
    departments = access.visible_departments(who.actor)
    async with services_of(request).pool.acquire() as conn:
        async with conn.transaction():
            await queries.limit_view(conn, departments)
            stages = await reads.stage_counts(conn, departments)
            overdue, overdue_total = await reads.milestones_due(
                conn, departments, today, due_from=None, due_until=today - timedelta(days=1), limit=MILESTONES_SHOWN)
            upcoming, upcoming_total = await reads.milestones_due(
                conn, departments, today, due_from=today, due_until=today + DUE_WITHIN, limit=MILESTONES_SHOWN)
            projects, totals = await reads.investment_by_project(conn, departments, PROJECTS_CHARTED)
            activity = await reads.recent_activity(conn, departments, list(labels.ACTIONS), ACTIVITY_SHOWN)
        notices, _next = await inbox.messages(conn, who.user.id, unread_only=True, limit=NOTICES_SHOWN, before=None)
    _ = who._
    return await render(
        request, who, "dashboard.html",
        funnel=charts.stage_funnel(stages, _, who.language),
        stages=[(stage.value, labels.stage_label(stage, _), stages.get(stage.value, 0)) for stage in labels.STAGE_ORDER],
        overdue=[_milestone(m, who) for m in overdue], overdue_total=overdue_total,
        upcoming=[_milestone(m, who) for m in upcoming], upcoming_total=upcoming_total, due_within=DUE_WITHIN.days,
        investment=charts.investment_bars(projects, _, who.language) if projects else None,
        investment_totals=totals, charted=PROJECTS_CHARTED,
        notices=notices,
        activity=[_event(e, who) for e in activity],
    )


def _milestone(row: Any, who: Viewer) -> dict[str, Any]:
    days_late = row["days_late"]
    return {
        "name": labels.milestone_label(row["name"], who._),
        "project_id": row["project_id"], "project_title": row["project_title"],
        "cooperation_id": row["cooperation_id"], "cooperation_title": row["cooperation_title"],
        "due_date": row["due_date"], "overdue": days_late > 0,
        "when": labels.overdue_label(days_late, who._) if days_late > 0 else labels.due_in_label(-days_late, who._),
    }


def _event(row: Any, who: Viewer) -> dict[str, Any]:
    return {
        "at": row["recorded_at"], "actor": row["actor_name"], "action": labels.action_label(row["action"], who._),
        "cooperation_id": row["cooperation_id"], "cooperation_title": row["cooperation_title"],
        "project_id": row["project_id"], "project_title": row["project_title"],
    }
