"""The access matrix, generated from the app's own route table (issue 5).

Every route under /api/v1, with every method, is asked once by every principal: nobody
(no credential), and each role (liaison officer, reviewer, leader, auditor, admin) once in
the department of the "home" records and once in another department. Path parameters come
from a prepared world, bodies are minimal but valid, and each answer is held against the
table below, derived from the rule book (`domain/access.py`) and README "Access":

* allowed:   the access check let the request through; the answer may still be a business
             refusal of a minimal body (409, 412, 422) or 400 (see ALLOWED_STATUSES);
* hidden:    404, exactly like a record that does not exist;
* forbidden: 403;
* anonymous: 401 everywhere except PUBLIC.

A second pass asks the routes that name a department's record (a cooperation, a project,
a webhook) about the CANARY records of a third department, which only reviewers and
auditors see. Whoever may not see that department must never find the canary string (or
an id of a canary record they did not name themselves) in any answer: lists, searches,
details, errors, feeds, previews.

A route that is added without a line in ROUTES fails `test_every_api_route_is_in_the_matrix`,
so the matrix grows with the app. Mismatches are collected and reported one per line.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import httpx
import pytest_asyncio

from api.services import office_today
from db.passwords import set_password
from db.users import create_user
from tests.conftest import LEGAL_DEPARTMENT, new_id, user_client
from tests.document_files import docx
from tests.test_api_support import (
    FRAMEWORK_SIGNED_ON,
    INVESTMENT_SIGNED_ON,
    Coop,
    World,
    cooperation_body,
    framework_body,
    investment_body,
    ok,
    open_cooperation,
    project_body,
    raw_as,
    world,
)

PREFIX = "/api/v1"
ROLES = ("liaison_officer", "reviewer", "leader", "auditor", "admin")

# ---------------------------------------------------------------- the expectation table

ALLOWED, HIDDEN, FORBIDDEN, ANONYMOUS = "allowed", "hidden", "forbidden", "401"
OUTCOME = {"A": ALLOWED, "H": HIDDEN, "F": FORBIDDEN}
# Statuses that mean "passed the access check": success, or a business answer to a minimal body.
# 400 is POST /auth/logout with a bearer token ("not a session").
ALLOWED_STATUSES = {200, 201, 204, 400, 409, 412, 422}

PUBLIC = {
    # Signing in is how a credential is obtained.
    "POST /auth/login": "sign-in",
    # Calendar apps cannot send a bearer token: the 256-bit secret in the URL is the credential
    # (an unknown or revoked secret answers 404, see the "unknown secret" variant).
    "GET /feeds/{secret}.ics": "calendar feed",
}


def rule(liaison_officer: str, reviewer: str, leader: str, auditor: str, admin: str) -> dict[str, str]:
    """Per role, two letters: the answer in the home records' department, then in another one."""
    return dict(zip(ROLES, (liaison_officer, reviewer, leader, auditor, admin), strict=True))


FAMILIES: dict[str, dict[str, str]] = {
    # Any signed-in user: their own things (inbox, tokens, settings), shared reference data
    # (organizations, the calendar), and lists filtered in SQL (checked by `shows`).
    "everyone": rule("AA", "AA", "AA", "AA", "AA"),
    # A department's record: liaison officers and leaders of it see it, reviewers and auditors
    # see everything, admins see no business record; the rest get 404.
    "record_read": rule("AH", "AA", "AH", "AA", "HH"),
    # Changing it: only its liaison officers; 403 to those who see it, 404 to the rest.
    "record_write": rule("AH", "FF", "FH", "FF", "HH"),
    # Opening a cooperation for the home department: its liaison officers only.
    "open_cooperation": rule("AF", "FF", "FF", "FF", "FF"),
    # Review steps: legal ones by a reviewer, the others by a leader over the department.
    "legal_decision": rule("FH", "AA", "FH", "FF", "HH"),
    "approval_decision": rule("FH", "FF", "AH", "FF", "HH"),
    # A project's or milestone's reminder policy: its liaison officer or a leader over it.
    "reminder_settings": rule("AH", "FF", "AH", "FF", "HH"),
    # The audit trail (search, export, verify, checkpoints, as-of): auditors.
    "audit_trail": rule("FF", "FF", "FF", "AA", "FF"),
    # Departments, users, roles: admins.
    "administration": rule("FF", "FF", "FF", "FF", "AA"),
    # Organizations and their people: liaison officers and admins.
    "registry_write": rule("AA", "FF", "FF", "FF", "AA"),
    # Organization-wide reminder policies and the working-day calendar, and the calendar preview
    # (it lists every open project's notices): admins.
    "office_settings": rule("FF", "FF", "FF", "FF", "AA"),
    # A department's chat-robot webhooks: an admin or a leader over the department. Registering
    # one for a department one does not manage is a 403 (the caller named it); revoking another
    # department's webhook is a 404, as if it did not exist.
    "webhook_create": rule("FF", "FF", "AF", "FF", "AA"),
    "webhook_revoke": rule("FH", "FF", "AH", "FF", "AA"),
    # Listing webhooks (each answer filtered to the departments one manages): admins and leaders.
    "webhook_lists": rule("FF", "FF", "AA", "FF", "AA"),
    # A department's calendar feed: whoever sees the department's records.
    "department_feed": rule("AF", "AA", "AF", "AA", "FF"),
    # Importing a project list: any liaison officer, for their own department (it opens cooperations).
    "import": rule("AA", "FF", "FF", "FF", "FF"),
    # The portfolio report over the departments one sees: leaders, auditors and liaison officers
    # (api/routes/reports.py); asking for a department out of one's view is a 404.
    "report": rule("AA", "FF", "AA", "AA", "FF"),
    "report_department": rule("AH", "FF", "AH", "AA", "FF"),
    # Adding a document: liaison officers of the department; reviewers and leaders over it add
    # review comments (so the access check lets them through; the kind is checked with the body).
    "document_upload": rule("AH", "AA", "AH", "FF", "HH"),
}
OWNER_ONLY = "owner_only"  # a message, token or feed of OWNER: theirs alone, 404 to anyone else
PUBLIC_FAMILY = "public"  # allowed for everyone, anonymous included
NOBODY = "nobody"  # 404 for everyone, anonymous included (an unknown feed secret)
OWNER = "liaison_officer@home"


# ---------------------------------------------------------------- the world


@dataclass
class Principal:
    name: str
    role: str | None  # None: anonymous
    side: str | None  # "home" or "other"
    http: httpx.AsyncClient
    user_id: str | None = None

    def sees(self, which: str) -> bool:
        """Whether the rule book lets this principal see the home or the canary department's records."""
        if self.role in ("reviewer", "auditor"):
            return True
        return which == "home" and self.side == "home" and self.role in ("liaison_officer", "leader")


@dataclass
class Target:
    """One department's records, each in the state its routes need."""

    label: str
    department: str
    w: World
    officer_name: str
    coop_id: str = ""
    term_coop_id: str = ""  # terminated by the matrix
    framework_id: str = ""  # signed
    investment_id: str = ""  # signed
    review_id: str = ""  # in review: decided by the matrix
    draft_id: str = ""  # a draft: edited and submitted by the matrix
    project_id: str = ""  # milestones m1 (moved), m2 (completed), m3 (kept)
    cancel_project_id: str = ""  # cancelled by the matrix
    webhook_id: str = ""
    document_id: str = ""  # the draft agreement's draft document, version 1


@dataclass
class Matrix:
    home: Target
    canary: Target
    canary_token: str
    hook_token: str  # in the canary department's webhook (its URL's key): see `canary_tokens`
    mark: str  # a search term in the areas of both the home and the canary cooperation
    principals: list[Principal]
    spare_department: str  # moved by PATCH /admin/departments/{name}
    spare_user_id: str  # changed, disabled and enabled by the admin routes
    feed_secret: str  # a department feed of the home department
    personal_feed_secret: str  # OWNER's personal feed ("me")
    feed_id: str  # another personal feed of OWNER, revoked by the matrix
    token_id: str  # OWNER's second token, revoked by the matrix
    message_id: str  # a message in OWNER's inbox
    calendar_version: int
    login: dict[str, str]
    import_id: str = ""  # OWNER's import batch (a file of headers only): theirs alone

    def canary_tokens(self, who: Principal) -> dict[str, str]:
        """What `who` must never read, with a name for the report. Unless they see the canary's
        department: the canary string and the ids of the canary's records; and, unless they are an
        admin (who manages every department's webhooks), the canary department's webhook (its id,
        and the key in its URL, a chat robot's credential)."""
        tokens: dict[str, str] = {}
        if not who.sees("canary"):
            tokens[self.canary_token] = "the canary string"
            for name, value in vars(self.canary).items():
                if name.endswith("_id") and value and name != "webhook_id":
                    tokens[value] = f"canary {name} {value}"
            if who.role != "admin":
                tokens[self.hook_token] = "the canary webhook's key"
                tokens[self.canary.webhook_id] = f"canary webhook_id {self.canary.webhook_id}"
        return tokens


HOME_DUE = (date(2030, 6, 14), date(2030, 7, 15), date(2030, 8, 15))
CANARY_DUE = (date(2029, 7, 16), date(2029, 8, 15), date(2029, 9, 14))
PREVIEW_YEAR = 2029  # the calendar preview moves the canary's notices (a holiday on its first due date)
ROBOT_URL = "https://8.8.8.8/cgi-bin/webhook/send?key=matrix-robot"  # a public literal: no DNS


def milestones(label: str, due: tuple[date, ...], last_owner: str | None = None) -> list[dict[str, Any]]:
    """Far in the future, so the session worker sends no notice (and no webhook call) for them.
    `last_owner`: who owns the last one (free text, as staff type it)."""
    names = ("Site handover", "Company registration", "Construction start")
    owners = (f"Owner {label}", f"Owner {label}", last_owner or f"Owner {label}")
    return [{"name": f"{name} {label}", "due_date": d.isoformat(), "owner": owner}
            for name, d, owner in zip(names, due, owners, strict=True)]


async def approve_and_sign(coop: Coop, agreement_id: str, reviewer: httpx.AsyncClient, leader: httpx.AsyncClient,
                           signers: list[str], signed_on: date) -> None:
    await coop.post(f"/agreements/{agreement_id}/submit")
    await coop.decide(agreement_id, "legal_review", by=reviewer)
    await coop.decide(agreement_id, "leadership_approval", by=leader)
    for organization_id in signers:
        await coop.sign(agreement_id, organization_id, signed_on)


async def build_target(officer: httpx.AsyncClient, reviewer: httpx.AsyncClient, leader: httpx.AsyncClient,
                       department: str, label: str, mark: str, due: tuple[date, ...],
                       last_owner: str | None = None) -> Target:
    """A cooperation in delivery with one project, agreements in every state, a second project to
    cancel, a second cooperation to terminate. Organization names stay neutral: the registry is
    shared by every department, so it may not carry the label."""
    w = await world(officer)
    t = Target(label, department, w, officer_name=f"Officer {label}")
    coop = await open_cooperation(officer, w, department=department, title=f"Cooperation {label}",
                                  liaison_officer=t.officer_name, areas=[f"Area {label}", mark],
                                  description=f"Negotiated by {label}")
    await coop.post("/negotiation-events", {"kind": "meeting", "occurred_on": "2024-01-20",
                                            "participants": [f"Guest {label}"], "summary": f"Talks {label}"})
    t.coop_id = coop.id
    t.framework_id = await coop.draft(framework_body(w, title=f"Framework {label}"))
    await approve_and_sign(coop, t.framework_id, reviewer, leader, [w.gov_id, w.company_id], FRAMEWORK_SIGNED_ON)
    t.investment_id = await coop.draft(investment_body(w, title=f"Investment {label}"))
    coop.investment_id = t.investment_id
    await approve_and_sign(coop, t.investment_id, reviewer, leader, [w.park_id, w.company_id], INVESTMENT_SIGNED_ON)
    t.review_id = await coop.draft(investment_body(w, title=f"Under review {label}"))
    await coop.post(f"/agreements/{t.review_id}/submit")
    t.draft_id = await coop.draft(investment_body(w, title=f"Draft {label}"))
    t.document_id = ok(await officer.post(f"/cooperations/{coop.id}/documents",
                                          data={"kind": "draft", "agreement_id": t.draft_id},
                                          files={"file": (f"Draft {label}.docx", docx([f"Clause of {label}"]))}),
                       201)["document"]["id"]
    project = {"title": f"Project {label}", "responsible_department": department,
               "responsible_officer": f"Officer {label}", "milestones": milestones(label, due, last_owner)}
    t.project_id = await coop.add_project(**project)
    t.cancel_project_id = await coop.add_project(**{**project, "title": f"Doomed project {label}"})
    term = await open_cooperation(officer, w, department=department, title=f"Short-lived {label}",
                                  liaison_officer=t.officer_name)
    t.term_coop_id = term.id
    return t


def display_name(role: str, side: str, suffix: str) -> str:
    return f"Matrix {role} {side} {suffix}"


def secret_of(feed: dict[str, Any]) -> str:
    return feed["url"].rsplit("/", 1)[1].removesuffix(".ics")


def client(app, token: str | None) -> httpx.AsyncClient:
    """Over ASGI; a 500 is an answer, not an exception, so it shows up as a mismatch."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                             base_url=f"http://accord.test{PREFIX}", headers=headers, timeout=60)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def matrix(app, pool: asyncpg.Pool) -> AsyncIterator[Matrix]:
    suffix = new_id()
    canary_token = f"CANARY-{uuid.uuid4().hex}"
    hook_token = f"CANARYHOOK-{uuid.uuid4().hex}"
    mark = f"matrixmark{suffix}"
    home_dept, other_dept = f"Home Bureau {suffix}", f"Elsewhere Bureau {suffix}"
    canary_dept = f"Canary Bureau {suffix}"  # the department's name is the admins' to know: no canary in it
    async with contextlib.AsyncExitStack() as stack:
        async def user(roles: list[str], department: str | None, name: str):
            return await stack.enter_async_context(user_client(app, pool, roles, department, name))

        officer = await user(["liaison_officer"], home_dept, f"Home officer {suffix}")
        leader = await user(["leader"], home_dept, f"Home director {suffix}")
        reviewer = await user(["reviewer"], LEGAL_DEPARTMENT, f"Counsel {suffix}")
        canary_officer = await user(["liaison_officer"], canary_dept, f"Bureau officer {suffix}")
        canary_leader = await user(["leader"], canary_dept, f"Bureau director {suffix}")

        principals = [Principal("anonymous", None, None, await stack.enter_async_context(client(app, None)))]
        for side, department in (("home", home_dept), ("other", other_dept)):
            for role in ROLES:
                made = await user([role], department, display_name(role, side, suffix))
                http = await stack.enter_async_context(raw_as(app, made.http))
                principals.append(Principal(f"{role}@{side}", role, side, http, made.user_id))
        owner = next(p for p in principals if p.name == OWNER)

        home = await build_target(officer.http, reviewer.http, leader.http, home_dept, f"Home {suffix}", mark,
                                  HOME_DUE)
        # Two departments each have someone of the same name: a canary milestone's owner is named
        # like OWNER (the read model names people as free text).
        canary = await build_target(canary_officer.http, reviewer.http, canary_leader.http, canary_dept,
                                    canary_token, mark, CANARY_DUE, last_owner=display_name("liaison_officer", "home", suffix))
        home.webhook_id = ok(await leader.http.post("/webhooks", json={
            "department": home_dept, "url": ROBOT_URL, "description": "Home robot"}), 201)["id"]
        canary.webhook_id = ok(await canary_leader.http.post("/webhooks", json={
            "department": canary_dept, "url": f"https://8.8.8.8/cgi-bin/webhook/send?key={hook_token}",
            "description": f"Robot of {hook_token}"}), 201)["id"]
        feed = ok(await officer.http.post("/calendar-feeds", json={"scope": "department", "department": home_dept}),
                  201)
        personal = ok(await owner.http.post("/calendar-feeds", json={"scope": "me"}), 201)
        own_feed = ok(await owner.http.post("/calendar-feeds", json={"scope": "me"}), 201)
        own_token = ok(await owner.http.post("/me/tokens", json={"name": "to revoke", "scope": "read"}), 201)
        message_id = f"matrix-{uuid.uuid4().hex}"
        await pool.execute(
            "INSERT INTO inbox_messages (id, user_id, kind, project_id, notice_key, subject, body) "
            "VALUES ($1, $2, 'notice', $3, $4, 'Matrix notice', 'For the owner only')",
            message_id, owner.user_id, home.project_id, f"{home.project_id}/m1/v0/matrix")

        spare_department = f"Matrix spare {suffix}"
        await pool.execute("INSERT INTO departments (name, created_by) VALUES ($1, 'tests')", spare_department)
        password = "Matrix passphrase with 7391 reasons"
        async with pool.acquire() as conn:
            spare = await create_user(conn, f"spare-{suffix}", f"Spare user {suffix}", ["auditor"], spare_department)
            signer = await create_user(conn, f"signer-{suffix}", f"Signer {suffix}", ["auditor"], other_dept)
            await set_password(conn, signer.id, password)
        calendar_version = ok(await officer.http.get("/calendar"))["version"]
        headers_only = "合作企业,牵头单位,项目名称,协议投资额（万元）,签约日期,责任部门,责任人\n".encode()
        import_id = ok(await owner.http.post("/imports", files={"file": ("list.csv", headers_only, "text/csv")}),
                       201)["id"]

        yield Matrix(home, canary, canary_token, hook_token, mark, principals, spare_department, spare.id,
                     secret_of(feed), secret_of(personal), own_feed["id"], own_token["id"], message_id, calendar_version,
                     {"username": signer.username, "password": password}, import_id=import_id)


# ---------------------------------------------------------------- requests: one line per route

NO_BODY = object()


@dataclass(frozen=True)
class Request:
    path: dict[str, Any] = field(default_factory=dict)  # path parameters over the defaults
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = NO_BODY


Fill = Callable[["Matrix", Target], Request]


@dataclass(frozen=True)
class Ask:
    family: str
    fill: Fill = lambda m, t: Request()
    variant: str = ""
    # ("home" | "canary", whether the answer shows that department's record): a list must
    # show it exactly to those who see the department.
    shows: tuple[tuple[str, Callable[[Any, Matrix], bool]], ...] = ()


def body(fn: Callable[[Matrix, Target], Any], **path: Any) -> Fill:
    return lambda m, t: Request(path={k: v(m, t) if callable(v) else v for k, v in path.items()}, json=fn(m, t))


def at(**path: Any) -> Fill:
    return lambda m, t: Request(path={k: v(m, t) if callable(v) else v for k, v in path.items()})


def query(fn: Callable[[Matrix, Target], dict[str, Any]]) -> Fill:
    return lambda m, t: Request(params=fn(m, t))


def ids_of(page: Any) -> set[str]:
    items = page["items"] if isinstance(page, dict) else page
    return {i.get("id") for i in items}


def now() -> str:
    return datetime.now(UTC).isoformat()


def today() -> str:
    return office_today().isoformat()


DRAFT = {"agreement_id": lambda m, t: t.draft_id}
COOP_PARAMS = ("cooperation_id",)

ROUTES: dict[str, list[Ask]] = {
    # ---- organizations: reference data shared by every department (no department, no 404)
    "POST /organizations": [Ask("registry_write", body(lambda m, t: {"name": f"Matrix Org {new_id()}",
                                                                      "kind": "company"}))],
    "GET /organizations": [Ask("everyone")],
    "GET /organizations/{organization_id}": [Ask("everyone")],
    "POST /organizations/{organization_id}/people": [Ask("registry_write", body(lambda m, t: {
        "name": "Matrix Person", "title": "Director"}))],
    "GET /organizations/{organization_id}/people": [Ask("everyone")],
    # ---- cooperation reads
    "POST /cooperations": [Ask("open_cooperation", body(lambda m, t: cooperation_body(
        m.home.w, department=m.home.department, title="Opened by the matrix")))],
    "GET /cooperations": [
        Ask("everyone", query(lambda m, t: {"liaison_officer": m.home.officer_name}), "officer filter",
            shows=(("home", lambda page, m: m.home.coop_id in ids_of(page)),)),
        Ask("everyone", query(lambda m, t: {"q": m.mark, "limit": 200}), "search",
            shows=(("home", lambda page, m: m.home.coop_id in ids_of(page)),
                   ("canary", lambda page, m: m.canary.coop_id in ids_of(page)))),
        Ask("everyone", query(lambda m, t: {"limit": 200}), "all"),
    ],
    "GET /cooperations/{cooperation_id}": [Ask("record_read")],
    "GET /cooperations/{cooperation_id}/agreements/{agreement_id}": [Ask("record_read")],
    "GET /cooperations/{cooperation_id}/audit": [Ask("record_read")],
    # ---- cooperation writes
    "POST /cooperations/{cooperation_id}/negotiation-events": [Ask("record_write", body(lambda m, t: {
        "kind": "note", "occurred_on": "2024-02-01", "summary": "Matrix note"}))],
    "POST /cooperations/{cooperation_id}/agreements": [Ask("record_write", body(lambda m, t: investment_body(
        t.w, title="Drafted by the matrix")))],
    "PATCH /cooperations/{cooperation_id}/agreements/{agreement_id}": [Ask("record_write", body(
        lambda m, t: {"title": "Edited by the matrix"}, **DRAFT))],
    "POST /cooperations/{cooperation_id}/agreements/{agreement_id}/submit": [Ask("record_write", at(**DRAFT))],
    "POST /cooperations/{cooperation_id}/agreements/{agreement_id}/signatures": [Ask("record_write", body(
        lambda m, t: {"organization_id": t.w.park_id, "signed_on": INVESTMENT_SIGNED_ON.isoformat()},
        agreement_id=lambda m, t: t.investment_id))],
    "POST /cooperations/{cooperation_id}/projects": [Ask("record_write", body(lambda m, t: project_body(
        t.investment_id, responsible_department=t.department, milestones=milestones("matrix", HOME_DUE))))],
    "POST /cooperations/{cooperation_id}/terminate": [Ask("record_write", body(
        lambda m, t: {"reason": "Ended by the matrix"}, cooperation_id=lambda m, t: t.term_coop_id))],
    # ---- documents (uploads are multipart: with no body, whoever passes the access check gets 422)
    "POST /cooperations/{cooperation_id}/documents": [Ask("document_upload")],
    "POST /cooperations/{cooperation_id}/documents/{document_id}/versions": [Ask("document_upload")],
    "GET /cooperations/{cooperation_id}/documents": [Ask("record_read")],
    "GET /cooperations/{cooperation_id}/documents/{document_id}": [Ask("record_read")],
    "GET /cooperations/{cooperation_id}/documents/{document_id}/versions/{version}/content": [Ask("record_read")],
    "GET /cooperations/{cooperation_id}/documents/{document_id}/versions/{version}/verify": [Ask("record_read")],
    "GET /cooperations/{cooperation_id}/documents/{document_id}/compare": [Ask("record_read", query(
        lambda m, t: {"from": 1, "to": 1}))],
    # The agreement in review has no signed original: whoever passes gets 409.
    "POST /cooperations/{cooperation_id}/agreements/{agreement_id}/seal": [Ask("record_write")],
    # ---- review decisions (on the agreement in review; a decided step is a 409 for the next one)
    "POST /cooperations/{cooperation_id}/agreements/{agreement_id}/review-steps/{step}/approve": [
        Ask("legal_decision", body(lambda m, t: {"comment": "Matrix approves"}, step="legal_review"),
            "legal_review"),
        Ask("approval_decision", body(lambda m, t: {"comment": "Matrix approves"}, step="leadership_approval"),
            "leadership_approval"),
    ],
    "POST /cooperations/{cooperation_id}/agreements/{agreement_id}/review-steps/{step}/reject": [
        Ask("legal_decision", body(lambda m, t: {"comment": "Matrix rejects"}, step="legal_review"),
            "legal_review"),
        Ask("approval_decision", body(lambda m, t: {"comment": "Matrix rejects"}, step="leadership_approval"),
            "leadership_approval"),
    ],
    # ---- project reads and writes
    "GET /projects": [
        Ask("everyone", query(lambda m, t: {"cooperation_id": m.home.coop_id}), "home cooperation",
            shows=(("home", lambda page, m: m.home.project_id in ids_of(page)),)),
        Ask("everyone", query(lambda m, t: {"cooperation_id": m.canary.coop_id}), "canary cooperation",
            shows=(("canary", lambda page, m: m.canary.project_id in ids_of(page)),)),
        Ask("everyone", variant="all"),
    ],
    "GET /projects/{project_id}": [Ask("record_read")],
    "POST /projects/{project_id}/milestones": [Ask("record_write", body(lambda m, t: {
        "name": "Added by the matrix", "due_date": "2030-09-30"}))],
    "POST /projects/{project_id}/milestones/{milestone_id}/move": [Ask("record_write", body(lambda m, t: {
        "new_due_date": "2030-10-31", "reason": "Moved by the matrix"}, milestone_id="m1"))],
    "POST /projects/{project_id}/milestones/{milestone_id}/complete": [Ask("record_write", body(lambda m, t: {
        "completed_on": today(), "evidence": "Seen by the matrix"}, milestone_id="m2"))],
    "POST /projects/{project_id}/investments": [Ask("record_write", body(lambda m, t: {
        "received_on": today(), "amount": "1.00", "source_note": "Matrix tranche"}))],
    "POST /projects/{project_id}/suspend": [Ask("record_write", body(lambda m, t: {"reason": "Matrix pause"}))],
    "POST /projects/{project_id}/resume": [Ask("record_write", body(lambda m, t: {"comment": "Matrix resumes"}))],
    "POST /projects/{project_id}/cancel": [Ask("record_write", body(
        lambda m, t: {"reason": "Cancelled by the matrix"}, project_id=lambda m, t: t.cancel_project_id))],
    # ---- the portfolio report
    "GET /reports/portfolio": [Ask("report"), Ask("report_department", query(lambda m, t: {
        "department": t.department}), "one department")],
    "GET /reports/portfolio.xlsx": [Ask("report")],
    "GET /reports/portfolio.csv": [Ask("report")],
    # ---- the audit trail
    "GET /audit": [Ask("audit_trail", query(lambda m, t: {"cooperation_id": t.coop_id, "limit": 5}))],
    "GET /audit/export": [Ask("audit_trail", query(lambda m, t: {"cooperation_id": t.coop_id,
                                                                 "format": "jsonl"}))],
    "GET /audit/verify": [Ask("audit_trail")],
    "GET /audit/checkpoints": [Ask("audit_trail")],
    "GET /cooperations/{cooperation_id}/as-of": [Ask("audit_trail", query(lambda m, t: {"at": now()}))],
    "GET /projects/{project_id}/as-of": [Ask("audit_trail", query(lambda m, t: {"at": now()}))],
    # ---- reminders of a project
    "GET /projects/{project_id}/notices": [Ask("record_read")],
    "GET /projects/{project_id}/milestones/{milestone_id}/what-if": [Ask("record_read", lambda m, t: Request(
        path={"milestone_id": "m3"}, params={"due_date": "2030-12-02"}))],
    "GET /projects/{project_id}/deliveries": [Ask("record_read")],
    "GET /projects/{project_id}/reminder-policy": [Ask("record_read")],
    "PUT /projects/{project_id}/reminder-policy": [Ask("reminder_settings", body(lambda m, t: {"note": "matrix"}))],
    "DELETE /projects/{project_id}/reminder-policy": [Ask("reminder_settings")],
    "GET /projects/{project_id}/milestones/{milestone_id}/reminder-policy": [Ask("record_read", at(
        milestone_id="m3"))],
    "PUT /projects/{project_id}/milestones/{milestone_id}/reminder-policy": [Ask("reminder_settings", body(
        lambda m, t: {"note": "matrix"}, milestone_id="m3"))],
    "DELETE /projects/{project_id}/milestones/{milestone_id}/reminder-policy": [Ask("reminder_settings", at(
        milestone_id="m3"))],
    # ---- office-wide reminder settings
    "GET /reminder-policies/default": [Ask("everyone")],
    "GET /organizations/{organization_id}/reminder-policy": [Ask("everyone")],
    "PUT /organizations/{organization_id}/reminder-policy": [Ask("office_settings", body(
        lambda m, t: {"note": "matrix"}))],
    "DELETE /organizations/{organization_id}/reminder-policy": [Ask("office_settings")],
    # ---- the calendar (the PUT names a stale version: whoever passes gets 409 and nothing changes)
    "GET /calendar": [Ask("everyone")],
    "GET /calendar/years/{year}": [Ask("everyone")],
    # Everyone may preview (each sees the moves of the projects they see; an admin all of them).
    "POST /calendar/years/{year}/preview": [Ask("everyone", body(lambda m, t: {
        "expected_version": m.calendar_version, "holidays": [CANARY_DUE[0].isoformat()]}))],
    "PUT /calendar/years/{year}": [Ask("office_settings", body(lambda m, t: {
        "expected_version": m.calendar_version + 1000, "holidays": [CANARY_DUE[0].isoformat()],
        "note": "matrix: stale on purpose"}))],
    # ---- administration
    "GET /admin/departments": [Ask("administration")],
    "POST /admin/departments": [Ask("administration", body(lambda m, t: {"name": f"Matrix dept {new_id()}"}))],
    "PATCH /admin/departments/{name}": [Ask("administration", body(lambda m, t: {"parent": None}))],
    "GET /admin/users": [Ask("administration", query(lambda m, t: {"department": m.spare_department}))],
    "POST /admin/users": [Ask("administration", body(lambda m, t: {
        "username": new_id("matrix-"), "display_name": "Made by the matrix", "department": m.spare_department,
        "roles": ["auditor"]}))],
    "PATCH /admin/users/{user_id}": [Ask("administration", body(lambda m, t: {"display_name": "Renamed"}))],
    "PUT /admin/users/{user_id}/roles": [Ask("administration", body(lambda m, t: {"roles": ["auditor"]}))],
    "POST /admin/users/{user_id}/disable": [Ask("administration")],
    "POST /admin/users/{user_id}/enable": [Ask("administration")],
    # ---- one's own inbox and notification settings
    "GET /inbox": [Ask("everyone")],
    "POST /inbox/read-all": [Ask("everyone")],
    "POST /inbox/{message_id}/read": [Ask(OWNER_ONLY)],
    "GET /me/notifications": [Ask("everyone")],
    "PUT /me/notifications": [Ask("everyone", body(lambda m, t: {"email": None, "language": "en"}))],
    # ---- department webhooks (of the home department; the canary pass revokes the canary's)
    "POST /webhooks": [Ask("webhook_create", body(lambda m, t: {
        "department": m.home.department, "url": ROBOT_URL, "description": "matrix"}))],
    "GET /webhooks": [
        Ask("webhook_lists", variant="all"),
        Ask("webhook_lists", query(lambda m, t: {"department": m.canary.department}), "canary department"),
    ],
    "DELETE /webhooks/{webhook_id}": [Ask("webhook_revoke")],
    # ---- calendar feeds
    "POST /calendar-feeds": [Ask("department_feed", body(lambda m, t: {
        "scope": "department", "department": m.home.department}))],
    "GET /calendar-feeds": [Ask("everyone")],
    "DELETE /calendar-feeds/{feed_id}": [Ask(OWNER_ONLY)],
    "GET /feeds/{secret}.ics": [
        Ask(PUBLIC_FAMILY, variant="home department feed"),
        Ask(PUBLIC_FAMILY, at(secret=lambda m, t: m.personal_feed_secret), "personal feed of " + OWNER),
        Ask(NOBODY, at(secret="NoSuchFeedSecretNoSuchFeedSecret0123"), "unknown secret"),
    ],
    # ---- sign-in, sessions, tokens
    "POST /auth/login": [Ask(PUBLIC_FAMILY, body(lambda m, t: m.login))],
    "POST /auth/logout": [Ask("everyone")],  # 400 for a bearer token: it is not a session
    "POST /auth/logout-all": [Ask("everyone")],
    "GET /auth/session": [Ask("everyone")],
    "PUT /me/password": [Ask("everyone", body(lambda m, t: {  # 409: these accounts have no password
        "current_password": "not the password", "new_password": "An entirely new passphrase 4823"}))],
    "POST /me/tokens": [Ask("everyone", body(lambda m, t: {"name": "matrix", "scope": "read"}))],
    "GET /me/tokens": [Ask("everyone")],
    "DELETE /me/tokens/{token_id}": [Ask(OWNER_ONLY)],
    "GET /me": [Ask("everyone")],
    # ---- importing a project list (a batch is its uploader's; confirming one without rows is a 409)
    "POST /imports": [Ask("import")],  # no file: 422 once the access check has passed
    "GET /imports/{batch_id}": [Ask(OWNER_ONLY, at(batch_id=lambda m, t: m.import_id))],
    "POST /imports/{batch_id}/confirm": [Ask(OWNER_ONLY, at(batch_id=lambda m, t: m.import_id))],
}

# Asked last, each on a record of its own, so they break nothing the other routes need.
LAST = ("POST /cooperations/{cooperation_id}/terminate", "POST /projects/{project_id}/cancel",
        "DELETE /webhooks/{webhook_id}", "DELETE /calendar-feeds/{feed_id}", "DELETE /me/tokens/{token_id}")
# Path parameters naming a department's record: these routes are asked about the canary's too.
RECORD_PARAMS = {"cooperation_id", "project_id", "webhook_id"}


def default_path(m: Matrix, t: Target) -> dict[str, Any]:
    return {"cooperation_id": t.coop_id, "agreement_id": t.review_id, "step": "legal_review",
            "project_id": t.project_id, "milestone_id": "m1", "organization_id": t.w.gov_id,
            "name": m.spare_department, "user_id": m.spare_user_id, "webhook_id": t.webhook_id,
            "feed_id": m.feed_id, "message_id": m.message_id, "token_id": m.token_id, "secret": m.feed_secret,
            "year": PREVIEW_YEAR, "document_id": t.document_id, "version": 1}


# ---------------------------------------------------------------- the route table


def api_routes(app) -> list[str]:
    """"METHOD /path" (relative to /api/v1) of every route under /api/v1, from the app's route table.

    FastAPI ≥ 0.16x keeps an included router as one node of `app.routes` (`_IncludedRouter`);
    `fastapi.routing.iter_route_contexts` flattens them with their prefixes. Older versions
    copied the routes, prefix and all, into `app.routes`."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI
        routes = [(r.path, r.methods) for r in app.routes]
    else:
        routes = [(r.path, r.methods) for r in iter_route_contexts(app.routes)]
    found = []
    for path, methods in routes:
        if path and path.startswith(PREFIX + "/"):
            found += [f"{method} {path.removeprefix(PREFIX)}" for method in sorted(methods or ()) if method != "HEAD"]
    return found


def route_order(routes: list[str]) -> list[str]:
    return [r for r in routes if r not in LAST] + [r for r in LAST if r in routes]


def path_params(route: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", route))


def test_every_api_route_is_in_the_matrix(app) -> None:
    routes = api_routes(app)
    assert len(routes) > 50 and "GET /me" in routes, f"the route table walk found only {routes}"
    missing = sorted(set(routes) - set(ROUTES))
    stale = sorted(set(ROUTES) - set(routes))
    assert not missing, "routes without a line in ROUTES (add who may call them):\n" + "\n".join(missing)
    assert not stale, "lines in ROUTES for routes the app no longer has:\n" + "\n".join(stale)
    public = sorted(r for r, asks in ROUTES.items() if any(a.family == PUBLIC_FAMILY for a in asks))
    assert public == sorted(PUBLIC), f"public routes {public} are not the ones listed in PUBLIC"


# ---------------------------------------------------------------- running it


@dataclass
class Cell:
    route: str
    variant: str
    target: str  # "home" or "canary"
    principal: str
    expected: str
    status: int
    got: str
    detail: str

    def line(self) -> str:
        variant = f" [{self.variant}]" if self.variant else ""
        return (f"{self.route}{variant} on {self.target} as {self.principal}: expected {self.expected}, "
                f"got {self.status} {self.detail[:160]}")


def expected(family: str, who: Principal, side: str | None) -> str:
    if family == PUBLIC_FAMILY:
        return ALLOWED
    if family == NOBODY:
        return HIDDEN
    if who.role is None:
        return ANONYMOUS
    if family == OWNER_ONLY:
        return ALLOWED if who.name == OWNER else HIDDEN
    return OUTCOME[FAMILIES[family][who.role][0 if side == "home" else 1]]


def classify(status: int) -> str:
    if status in ALLOWED_STATUSES:
        return ALLOWED
    return {401: ANONYMOUS, 403: FORBIDDEN, 404: HIDDEN}.get(status, f"status {status}")


def detail_of(response: httpx.Response) -> str:
    try:
        found = response.json()
    except ValueError:
        return response.text[:160].replace("\n", " ")
    return json.dumps(found.get("detail", "") if isinstance(found, dict) else "", ensure_ascii=False)


@dataclass
class Results:
    cells: list[Cell]
    mismatches: list[str]
    leaks: list[str]


async def ask(m: Matrix, route: str, a: Ask, t: Target, which: str, who: Principal, results: Results) -> None:
    """Send one request of `route` about `t`'s records as `who`; note what differs from the table
    and any canary in the answer."""
    method, template = route.split(" ", 1)
    filled = a.fill(m, t)
    values = {**default_path(m, t), **filled.path}
    path = template
    for name in path_params(route):
        path = path.replace("{" + name + "}", str(values[name]))
    kwargs: dict[str, Any] = {"params": filled.params}
    if filled.json is not NO_BODY:
        kwargs["json"] = filled.json
    response = await who.http.request(method, path, **kwargs)
    who.http.cookies.clear()  # a sign-in sets a session cookie: the next request must not carry it

    side = "other" if which == "canary" else who.side
    want, got = expected(a.family, who, side), classify(response.status_code)
    cell = Cell(route, a.variant, which, who.name, want, response.status_code, got, detail_of(response))
    results.cells.append(cell)
    if got != want:
        results.mismatches.append(cell.line())
    if got == ALLOWED and response.status_code < 300:
        for department, shown in a.shows:
            if shown(response.json(), m) != who.sees(department):
                results.mismatches.append(
                    f"{route} [{a.variant}] on {which} as {who.name}: the {department} record is "
                    f"{'listed' if shown(response.json(), m) else 'missing'}, but the principal "
                    f"{'sees' if who.sees(department) else 'does not see'} that department")

    tokens = m.canary_tokens(who)
    if route == "POST /calendar/years/{year}/preview" and who.role == "admin":
        # The calendar's editor sees which notices (by project and milestone id) a change would
        # move: ids, never titles or the canary string.
        tokens = {t: name for t, name in tokens.items() if name == "the canary string"}
    if tokens:
        sent = str(response.request.url) + response.request.content.decode("utf-8", "replace")
        answered = response.text + " " + " ".join(f"{k}: {v}" for k, v in response.headers.items())
        found = [token for token in tokens if token in answered and token not in sent]
        if found:
            first = answered.index(found[0])
            results.leaks.append(
                f"{route}{f' [{a.variant}]' if a.variant else ''} on {which} as {who.name}: "
                f"{', '.join(tokens[t] for t in found)} in a {response.status_code} answer: "
                f"…{' '.join(answered[max(0, first - 100):first + 60].split())}…")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def results(app, matrix: Matrix) -> Results:
    out = Results([], [], [])
    routes = route_order([r for r in api_routes(app) if r in ROUTES])
    for route in routes:  # the home records, from every principal
        for a in ROUTES[route]:
            for who in matrix.principals:
                await ask(matrix, route, a, matrix.home, "home", who, out)
    for route in routes:  # the canary's records, wherever a route names a department's record
        if path_params(route) & RECORD_PARAMS:
            for a in ROUTES[route]:
                for who in matrix.principals:
                    await ask(matrix, route, a, matrix.canary, "canary", who, out)
    return out


def summary(r: Results) -> str:
    by_outcome: dict[str, int] = {}
    for cell in r.cells:
        by_outcome[cell.got] = by_outcome.get(cell.got, 0) + 1
    return f"{len(r.cells)} cells ({', '.join(f'{k}: {v}' for k, v in sorted(by_outcome.items()))})"


async def test_every_principal_gets_the_rule_books_answer_on_every_route(results: Results) -> None:
    print(summary(results))
    for cell in results.cells:  # passed the access check, refused by a business rule: worth a glance
        if cell.got == ALLOWED and cell.status >= 300:
            print("business answer:", cell.line())
    assert results.cells, "the matrix asked nothing"
    assert not results.mismatches, \
        f"{len(results.mismatches)} answers differ from the rule book, of {summary(results)}:\n" + \
        "\n".join(results.mismatches)


async def test_the_canary_never_reaches_anyone_who_may_not_see_it(results: Results, matrix: Matrix) -> None:
    # The canary is really there for those who may see it (else the check below proves nothing).
    read = {c.principal for c in results.cells
            if (c.route, c.target, c.status) == ("GET /cooperations/{cooperation_id}", "canary", 200)}
    assert read == {"reviewer@home", "reviewer@other", "auditor@home", "auditor@other"}, \
        f"the canary cooperation was read by {sorted(read)}, not by every reviewer and auditor"
    assert not results.leaks, f"{len(results.leaks)} answers carry the canary:\n" + "\n".join(results.leaks)
