"""Calendar feeds: a secret URL per person or department that calendar apps subscribe to.

Outlook, WPS, DingTalk and phone calendars fetch a subscription on their own schedule
and cannot send a bearer token, so the feed URL carries its own credential: 256
random bits, shown once, stored only as SHA-256. Revoking the feed kills the URL.
Each fetch is audited as the feed's owner (auth method `feed_secret`), so the trail
shows who could see which milestones, and when.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response, status

from api.audit_log import event_for, with_origin
from api.auth import actor_for
from api.errors import conflict, not_found
from api.idempotency import WITHHOLD_REPLAY
from api.notice_schemas import CalendarFeed, CalendarFeedCreated, CalendarFeedIn
from api.services import ActorDep, RequestIdDep, Services, ServicesDep, new_id
from channels.ics import calendar_bytes, milestone_event
from db import feeds
from db.audit_chain import append
from db.users import user_by_id
from domain import access
from domain.audit import Actor
from domain.types import Identifier

router = APIRouter(prefix="/calendar-feeds", tags=["calendar feeds"])
public_router = APIRouter(prefix="/feeds", tags=["calendar feeds"])

# What token_urlsafe produces; anything else cannot be a feed secret and is answered 404 unhashed.
_SECRET = re.compile(r"[A-Za-z0-9_-]{20,128}")
CACHE_CONTROL = "private, max-age=300"


def feed_url(services: Services, secret: str) -> str:
    return f"{services.public_url.rstrip('/')}/api/v1/feeds/{secret}.ics"


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CalendarFeedCreated)
async def create_feed(body: CalendarFeedIn, request: Request, response: Response, services: ServicesDep,
                      actor: ActorDep, request_id: RequestIdDep) -> dict:
    """A feed of the caller's milestones (`me`) or a department's; the answer's `url` is never shown again."""
    response.headers["Cache-Control"] = "no-store"  # the URL is a credential: no proxy or browser cache keeps it
    setattr(request.state, WITHHOLD_REPLAY, True)  # nor the idempotency store: only its hash is kept
    if body.scope == "department":
        assert body.department is not None
        access.check_department_feed(actor, body.department)
    feed_id = new_id(request_id, "calendar_feed")
    secret = secrets.token_urlsafe(32)
    user_id = actor.user_id if body.scope == "me" else None
    async with services.pool.acquire() as conn, conn.transaction():
        row = await feeds.insert(conn, feed_id, secret, user_id, body.department, actor.user_id)
        if row is None:  # a retry after a crash: the secret of the first attempt is unknowable
            raise conflict(f"this request created calendar feed {feed_id} already; revoke it and create another")
        await append(conn, event_for(
            actor, request_id=request_id, action="calendar_feed.created", entity_type="calendar_feed",
            entity_id=feed_id, after={"scope": body.scope, "department": body.department, "user_id": user_id},
        ))
    return {**dict(row), "url": feed_url(services, secret)}


@router.get("", response_model=list[CalendarFeed])
async def list_feeds(services: ServicesDep, actor: ActorDep) -> list[dict]:
    """The caller's active feeds, without their URLs."""
    async with services.pool.acquire() as conn:
        return [dict(r) for r in await feeds.feeds_of(conn, actor.user_id)]


@router.delete("/{feed_id}", response_model=CalendarFeed)
async def revoke_feed(feed_id: Identifier, services: ServicesDep, actor: ActorDep, request_id: RequestIdDep) -> dict:
    """Revoke a feed the caller created (404 for anyone else's); a repeat changes nothing."""
    async with services.pool.acquire() as conn, conn.transaction():
        current = await feeds.feed_of(conn, feed_id, actor.user_id)
        if current is None:
            raise not_found(f"calendar feed {feed_id}")
        if current["revoked_at"] is not None:
            return dict(current)
        row = await feeds.revoke(conn, feed_id)
        await append(conn, event_for(
            actor, request_id=request_id, action="calendar_feed.revoked", entity_type="calendar_feed",
            entity_id=feed_id, before={"revoked_at": None},
            after={"scope": row["scope"], "department": row["department"],
                   "revoked_at": row["revoked_at"].isoformat()},
        ))
    return dict(row)


@public_router.get("/{secret}.ics", response_class=Response,
                   responses={200: {"content": {"text/calendar": {}}}, 404: {"description": "unknown or revoked"}})
async def fetch_feed(secret: str, request: Request, services: ServicesDep) -> Response:
    """The feed itself, without a bearer token: the secret in the URL is the credential."""
    if not _SECRET.fullmatch(secret):
        raise not_found("calendar feed")
    async with services.pool.acquire() as conn:
        feed = await feeds.by_secret(conn, secret)
        if feed is None:
            raise not_found("calendar feed")  # the same answer for unknown and revoked
        # The owner's rights of today, not of the day the feed was made: a user who moved or
        # lost a role no longer receives what they may not see.
        owner = await user_by_id(conn, feed["owner_id"])
        if owner is None:
            raise not_found("calendar feed")
        view = access.visible_departments(actor_for(owner, "feed_secret", request))
        if feed["department"] is not None:
            if view is not None and feed["department"] not in view:
                raise not_found("calendar feed")
            milestones = await feeds.milestones_for_department(conn, feed["department"])
            name = f"Accord · {feed['department']}"
        else:
            names = sorted({feed["display_name"], feed["username"]})
            milestones = await feeds.milestones_for_person(conn, names, view)
            name = f"Accord · {feed['display_name']}"
        async with conn.transaction():
            await append(conn, event_for(
                _owner(feed, request), request_id=getattr(request.state, "request_id", None),
                action="calendar_feed.read", entity_type="calendar_feed", entity_id=feed["id"],
                after={"scope": "department" if feed["department"] is not None else "me",
                       "department": feed["department"], "events": len(milestones)},
            ))
    body = calendar_bytes(name, _events(services, milestones))
    return Response(body, media_type="text/calendar; charset=utf-8", headers={"Cache-Control": CACHE_CONTROL})


def _owner(feed: dict, request: Request) -> Actor:
    """The feed's owner, who holds the secret: the actor of every fetch."""
    actor = Actor(user_id=feed["owner_id"], name=feed["display_name"], role=feed["role"],
                  auth_method="feed_secret", department=feed["owner_department"])
    return with_origin(actor, request)


def _events(services: Services, milestones: list[feeds.FeedMilestone]) -> list:
    stamp = datetime.now(UTC)
    return [
        milestone_event(project_id=m["project_id"], milestone_id=m["milestone_id"],
                        project_title=m["project_title"], milestone_name=m["milestone_name"],
                        due_date=m["due_date"], due_version=m["due_version"], stamp=stamp,
                        description=_description(services, m))
        for m in milestones
    ]


def _description(services: Services, m: feeds.FeedMilestone) -> str:
    """Who answers for the milestone and where to look, in both office languages."""
    lines = [f"负责部门 Department: {m['responsible_department']}",
             f"负责人 Officer: {m['responsible_officer']}"]
    if m["owner"]:
        lines.append(f"里程碑负责人 Milestone owner: {m['owner']}")
    lines.append(f"{services.public_url.rstrip('/')}/api/v1/projects/{m['project_id']}")
    return "\n".join(lines)
