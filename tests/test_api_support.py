"""Helpers shared by the HTTP API tests (`test_api_*.py`); this module holds no tests itself.

Everything here talks to the app over HTTP only (plus SQL reads to check what
changed). `World` builds the usual cast of organizations; `Coop` wraps one
cooperation and its agreements so that a test states the step it cares about.

`raw` is an HTTP client for the same user that does not re-raise app exceptions,
so an unhandled error shows up as a 500 answer instead of an exception in the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from tests.conftest import new_id

# Fixed past dates: signatures, completions and investments may not be in the future.
FRAMEWORK_SIGNED_ON = date(2024, 3, 1)
INVESTMENT_SIGNED_ON = date(2024, 6, 15)
REVIEW_CHAIN = ("legal_review", "leadership_approval")
REVIEW_DESK: dict[str, httpx.AsyncClient] = {}
"""Who decides each review step in the API tests (set by the `api` fixture): not the drafter."""
TEMPLATE_DAYS = {
    "company_registration": 30,
    "site": 90,
    "construction_start": 180,
    "completion": 540,
    "operation": 630,
    "investment_target": 1080,
}


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def raw(app, api) -> AsyncIterator[httpx.AsyncClient]:
    """Same user as `api`, but a 500 is an answer (status 500), not an exception."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://accord.test/api/v1",
                                 headers={"Authorization": f"Bearer {api.token}"}, timeout=60) as http:
        yield http


def key() -> str:
    """A fresh Idempotency-Key."""
    return f"test-{uuid.uuid4().hex}"


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: " \
                                           f"{response.status_code} {response.text}"
    return response.json()


# ---------------------------------------------------------------- organizations


@dataclass
class World:
    """A government, a park committee and a company, freshly named."""

    suffix: str
    government: dict[str, Any]
    park: dict[str, Any]
    company: dict[str, Any]

    @property
    def gov_id(self) -> str:
        return self.government["id"]

    @property
    def park_id(self) -> str:
        return self.park["id"]

    @property
    def company_id(self) -> str:
        return self.company["id"]


async def create_org(http: httpx.AsyncClient, name: str, kind: str, region: str | None = None) -> dict[str, Any]:
    return ok(await http.post("/organizations", json={"name": name, "kind": kind, "region": region}), 201)


async def world(http: httpx.AsyncClient, company_name: str | None = None) -> World:
    suffix = new_id()
    gov = await create_org(http, f"绵阳市人民政府 Municipal Government {suffix}", "government", "Mianyang, Sichuan")
    park = await create_org(http, f"高新区管委会 Park Committee {suffix}", "park_committee", "Mianyang, Sichuan")
    company = await create_org(http, company_name or f"Partner Technology Co., Ltd. {suffix}", "company",
                               "Guangzhou, Guangdong")
    return World(suffix, gov, park, company)


# ---------------------------------------------------------------- cooperations


def cooperation_body(w: World, **overrides: Any) -> dict[str, Any]:
    body = {
        "title": f"Strategic cooperation {w.suffix}",
        "lead_organization_id": w.gov_id,
        "partner_organization_id": w.company_id,
        "areas": ["Sci-Tech Expo 科博会", "Intellectual property 知识产权"],
        "liaison_officer": f"Officer Wang {w.suffix}",
        "department": "Investment Promotion Bureau 投资促进局",
        "started_on": "2024-01-10",
        "target_signing_date": "2024-03-01",
        "description": "From negotiation to signing within three months.",
    }
    body.update(overrides)
    return body


def framework_body(w: World, **overrides: Any) -> dict[str, Any]:
    body = {
        "kind": "framework",
        "title": "战略合作框架协议 Strategic Cooperation Framework Agreement",
        "parties": [
            {"organization_id": w.gov_id, "signatory_name": "Sun Fuquan", "signatory_title": "Vice Mayor"},
            {"organization_id": w.company_id, "signatory_name": "Chen Dong", "signatory_title": "CPO"},
        ],
    }
    body.update(overrides)
    return body


def investment_body(w: World, **overrides: Any) -> dict[str, Any]:
    body = {
        "kind": "investment",
        "title": "项目投资协议 Project Investment Agreement",
        "parties": [
            {"organization_id": w.park_id, "signatory_name": "Director Zhou", "signatory_title": "Park Director"},
            {"organization_id": w.company_id, "signatory_name": "Xie Xuhui", "signatory_title": "Chairman"},
        ],
    }
    body.update(overrides)
    return body


def project_body(agreement_id: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "agreement_id": agreement_id,
        "title": f"Regional headquarters {new_id()}",
        "site": "High-tech Zone 高新区",
        "committed_investment": "50000000.00",
        "responsible_department": "Park Committee",
        "responsible_officer": "Project officer Li",
    }
    body.update(overrides)
    return body


@dataclass
class Coop:
    http: httpx.AsyncClient
    w: World
    id: str
    state: dict[str, Any]
    framework_id: str | None = None
    investment_id: str | None = None
    project_ids: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/cooperations/{self.id}"

    async def post(self, sub: str, body: Any = None, status: int = 200, **kw: Any) -> Any:
        return ok(await self.http.post(self.path + sub, json=body, **kw), status)

    async def get(self) -> dict[str, Any]:
        return ok(await self.http.get(self.path))

    async def draft(self, body: dict[str, Any]) -> str:
        before = {a["agreement_id"] for a in self.state["agreements"]}
        self.state = await self.post("/agreements", body)
        (new,) = [a for a in self.state["agreements"] if a["agreement_id"] not in before]
        return new["agreement_id"]

    async def approve_all(self, agreement_id: str) -> None:
        """Submit, then each step approved by whoever decides it (never the drafter)."""
        self.state = await self.post(f"/agreements/{agreement_id}/submit")
        for step in REVIEW_CHAIN:
            self.state = await self.decide(agreement_id, step)

    async def decide(self, agreement_id: str, step: str, decision: str = "approve", status: int = 200,
                     comment: str = "同意 Approved", by: httpx.AsyncClient | None = None) -> Any:
        """A review decision by the step's decider on the review desk (a reviewer or a leader)."""
        http = by or REVIEW_DESK.get(step, self.http)
        return ok(await http.post(f"{self.path}/agreements/{agreement_id}/review-steps/{step}/{decision}",
                                  json={"comment": comment}), status)

    async def sign(self, agreement_id: str, organization_id: str, signed_on: date) -> dict[str, Any]:
        self.state = await self.post(f"/agreements/{agreement_id}/signatures",
                                     {"organization_id": organization_id, "signed_on": signed_on.isoformat()})
        return self.state

    async def sign_framework(self) -> None:
        self.framework_id = await self.draft(framework_body(self.w))
        await self.approve_all(self.framework_id)
        await self.sign(self.framework_id, self.w.gov_id, FRAMEWORK_SIGNED_ON)
        await self.sign(self.framework_id, self.w.company_id, FRAMEWORK_SIGNED_ON)

    async def sign_investment(self) -> None:
        self.investment_id = await self.draft(investment_body(self.w))
        await self.approve_all(self.investment_id)
        await self.sign(self.investment_id, self.w.park_id, INVESTMENT_SIGNED_ON)
        await self.sign(self.investment_id, self.w.company_id, INVESTMENT_SIGNED_ON)

    async def add_project(self, **overrides: Any) -> str:
        before = {p["project_id"] for p in self.state["projects"]}
        assert self.investment_id is not None
        self.state = await self.post("/projects", project_body(self.investment_id, **overrides), 201)
        (new,) = [p["project_id"] for p in self.state["projects"] if p["project_id"] not in before]
        self.project_ids.append(new)
        return new


async def open_cooperation(http: httpx.AsyncClient, w: World | None = None, **overrides: Any) -> Coop:
    w = w or await world(http)
    state = ok(await http.post("/cooperations", json=cooperation_body(w, **overrides)), 201)
    return Coop(http, w, state["cooperation_id"], state)


async def in_delivery(http: httpx.AsyncClient, projects: int = 0, **project_overrides: Any) -> Coop:
    """A cooperation with both agreements signed and `projects` projects."""
    coop = await open_cooperation(http)
    await coop.sign_framework()
    await coop.sign_investment()
    for _ in range(projects):
        await coop.add_project(**project_overrides)
    return coop


# ---------------------------------------------------------------- checks


async def audit_count(pool: asyncpg.Pool, cooperation_id: str, outcome: str = "succeeded") -> int:
    """Audit rows of a cooperation with this outcome: by default, its accepted actions.

    Refused and failed attempts are audited too (outcome `refused` / `failed`), so
    "nothing changed" means no new `succeeded` row. Reminder notices (`notice.*`, sent by the
    session worker for overdue milestones whenever it gets to them) are not actions: not counted.
    """
    return await pool.fetchval("SELECT count(*) FROM audit_events WHERE cooperation_id = $1 AND outcome = $2 "
                               "AND action NOT LIKE 'notice.%'", cooperation_id, outcome)


async def eventually(check, timeout: float = 10.0, interval: float = 0.1):
    """Poll an async `check` until it returns a truthy value; return that value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


def plain_failure(test):
    """Report a failure of `test` as a plain message, without a Python traceback.

    For the xfail tests: formatting a traceback calls `ast.parse`, and on CPython 3.11.7
    that can die with "SystemError: AST constructor recursion depth mismatch" (a nested
    `ast.parse` from a finalizer's traceback during garbage collection), which pytest
    reports as an INTERNALERROR that ends the whole session.
    """

    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> None:
        try:
            await test(*args, **kwargs)
        except pytest.fail.Exception:
            raise
        except BaseException as error:  # noqa: BLE001 - any failure, reported plainly
            gc.collect()
            location = _test_line(error, test)
            pytest.fail(f"{type(error).__name__} at line {location}: {error}", pytrace=False)

    return run


def _test_line(error: BaseException, test) -> int | None:
    tb = error.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code is test.__code__:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


# ---------------------------------------------------------------- who decides (domain/access.py)


def desk_for(step: str) -> httpx.AsyncClient:
    """The client of whoever decides `step` on the review desk: a step whose name starts with
    "legal" goes to the reviewer, any other step to the leader of the cooperation's department."""
    return REVIEW_DESK["legal_review" if step.startswith("legal") else "leadership_approval"]


@contextlib.asynccontextmanager
async def raw_as(app, http: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """The same user as `http` (its token), but a 500 is an answer (status 500), not an exception."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://accord.test/api/v1",
                                 headers={"Authorization": http.headers["Authorization"]}, timeout=60) as client:
        yield client


async def user_id_of(http: httpx.AsyncClient) -> str:
    """The user id behind a client (GET /me)."""
    return ok(await http.get("/me"))["user_id"]
