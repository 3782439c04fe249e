"""Milestones as iCalendar events (RFC 5545), for e-mail attachments and calendar feeds.

Officials live in their calendar apps, so every reminder carries the deadline
as an event they can add with one click. The event identity is the milestone,
not the notice: the UID is stable and SEQUENCE is the due-date version, so
when a due date moves, the next attachment (or the next poll of a feed)
updates the event already in the subscriber's calendar instead of adding a
second one on the old day.

Nothing here reads the clock: DTSTAMP is passed in, so the same inputs always
give the same bytes (workflow replay, tests, deduplicating feeds).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import icalendar

PRODID = "-//Accord//Milestones//ZH"
UID_DOMAIN = "accord"


def milestone_uid(project_id: str, milestone_id: str) -> str:
    return f"{project_id}.{milestone_id}@{UID_DOMAIN}"


def milestone_event(
    *,
    project_id: str,
    milestone_id: str,
    project_title: str,
    milestone_name: str,
    due_date: date,
    due_version: int,
    stamp: datetime,
    description: str | None = None,
) -> icalendar.Event:
    """An all-day event on the due date of one milestone."""
    if stamp.tzinfo is None or stamp.utcoffset() is None:
        raise ValueError("stamp must be timezone-aware")
    event = icalendar.Event()
    event.add("uid", milestone_uid(project_id, milestone_id))
    # A `date` (not a datetime) makes VALUE=DATE: the deadline is a day, whatever the viewer's time zone.
    event.add("dtstart", due_date)
    # DTEND is exclusive for all-day events: the next day, so the event covers exactly the due date.
    event.add("dtend", due_date + timedelta(days=1))
    event.add("dtstamp", stamp.astimezone(UTC))
    event.add("sequence", due_version)
    event.add("summary", f"{milestone_name} · {project_title}")
    # A deadline is not a meeting: it must not show the whole day as busy.
    event.add("transp", "TRANSPARENT")
    if description:
        event.add("description", description)
    return event


def calendar_bytes(name: str, events: Iterable[icalendar.Event], method: str | None = None) -> bytes:
    """A VCALENDAR holding `events`, serialised (UTF-8, CRLF line ends, folded lines).

    `method` is "PUBLISH" for an attachment; a subscribed feed has none.
    """
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    # Not in RFC 5545, but the name Outlook, Apple and Google Calendar show for a subscription.
    calendar.add("x-wr-calname", name)
    if method:
        calendar.add("method", method)
    for event in events:
        calendar.add_component(event)
    return calendar.to_ical()
