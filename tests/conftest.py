"""Real parts for the suite: an embedded PostgreSQL, the Temporal dev server and a worker.

Everything is started once per test session in a temporary directory; each test
works on its own fresh ids, so tests never see each other's records.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.reminders import ReminderConfig
from channels.email import SmtpSettings
from db.migrate import migrate
from db.pool import create_pool
from db.reminder_settings import save_calendar
from domain.calendar import WorkingCalendar
from runtime.embedded import start_embedded_postgres
from runtime.mail_sink import MailSink
from runtime.temporal import build_worker

BIN = Path(sys.executable).parent
TASK_QUEUE = "accord-test"
AUDIT_KEY = b"test-audit-checkpoint-key"

# The session worker reminds on a calendar where every day is a working day and the office
# never closes, so a milestone due today is reminded at once whenever the suite runs.
# Holidays and office hours are tested on the time-skipping server and in the pure tests.
ALWAYS_OPEN = "test: always open"
ALWAYS_OPEN_YEARS = range(2024, 2031)


def always_open_calendar() -> WorkingCalendar:
    weekends = {date(y, 1, 1) + timedelta(days=d) for y in ALWAYS_OPEN_YEARS for d in range(366)}
    return WorkingCalendar(name=ALWAYS_OPEN, covered_years=set(ALWAYS_OPEN_YEARS),
                           workdays={d for d in weekends if d.year in ALWAYS_OPEN_YEARS and d.weekday() >= 5})


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    # Not under pytest's tmp_path: as root the server runs as its own system user, which
    # cannot enter pytest's private (0700) directories to stop cleanly.
    folder = Path(tempfile.mkdtemp(prefix="accord-test-pg-"))
    folder.chmod(0o755)
    server = start_embedded_postgres(folder / "data", database="accord_test")
    yield server.url
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pool(pg_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(pg_url)
    async with pool.acquire() as conn:
        await migrate(conn)
        async with conn.transaction():
            await save_calendar(conn, always_open_calendar(), "every day a working day", "tests")
    yield pool
    await pool.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=["--log-level", "error"],
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[MailSink]:
    """A real SMTP server (aiosmtpd) that keeps what the session worker sends."""
    folder = Path(tempfile.mkdtemp(prefix="accord-test-mail-"))
    with MailSink(folder, port=0) as sink:
        yield sink
    shutil.rmtree(folder, ignore_errors=True)


def session_reminders(mail_sink: MailSink) -> ReminderConfig:
    return ReminderConfig(
        public_url="http://accord.test", smtp=SmtpSettings(port=mail_sink.port, sender="Accord <accord@accord.test>"),
        allow_private_webhooks=True, leadership_department="Leadership office (tests)", hour=0, until_hour=24,
        give_up_after=timedelta(minutes=2), calendar_name=ALWAYS_OPEN)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client(dev_env: WorkflowEnvironment, pool: asyncpg.Pool, mail_sink: MailSink) -> AsyncIterator[Client]:
    """A client whose task queue is served by a real worker for the whole session."""
    worker = build_worker(dev_env.client, pool, TASK_QUEUE, reminders=session_reminders(mail_sink))
    async with worker:
        yield dev_env.client


def new_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------- the HTTP API


@dataclass
class ApiUser:
    token: str
    user_id: str
    http: httpx.AsyncClient


@pytest.fixture(scope="session")
def document_dir() -> Iterator[Path]:
    """The session app's document store: a local directory, as under `make run`."""
    folder = Path(tempfile.mkdtemp(prefix="accord-test-documents-"))
    yield folder
    for path in folder.rglob("*"):  # stored blobs are read-only
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(folder, ignore_errors=True)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def app(client: Client, pool: asyncpg.Pool, document_dir: Path):
    from api.app import create_app
    from api.services import Services
    from documents.storage import LocalStore

    return create_app(Services(pool=pool, client=client, task_queue=TASK_QUEUE, audit_key=AUDIT_KEY,
                               public_url="http://accord.test", reminder_hour=0, reminder_until_hour=24,
                               leadership_department="Leadership office (tests)", email_enabled=True,
                               calendar_name=ALWAYS_OPEN, documents=LocalStore(document_dir)))


# The department the API tests work in (tests/test_api_support.py opens cooperations for it),
# and where its review steps are decided.
API_DEPARTMENT = "Investment Promotion Bureau 投资促进局"
LEGAL_DEPARTMENT = "Legal Affairs Office 法制办"


@asynccontextmanager
async def user_client(app, pool: asyncpg.Pool, roles: list[str], department: str | None,
                      display_name: str | None = None) -> AsyncIterator[ApiUser]:
    """A fresh user with these roles and an API token, and an HTTP client on the app."""
    from db.users import create_user, issue_token

    async with pool.acquire() as conn:
        user = await create_user(conn, new_id("user-"), display_name or f"Staff {new_id()}", roles, department)
        token = await issue_token(conn, user.id, "tests")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord.test/api/v1",
                                 headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        yield ApiUser(token=token, user_id=user.id, http=http)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def api(app, pool: asyncpg.Pool) -> AsyncIterator[ApiUser]:
    """An authenticated HTTP client on the real app (real PostgreSQL, real Temporal, real worker).

    A liaison officer of API_DEPARTMENT who is also an auditor (so tests can read the audit
    trail); review steps go to a reviewer and a leader of their own (separation of duties),
    which `tests.test_api_support.Coop.approve_all` uses.
    """
    from tests import test_api_support

    async with (user_client(app, pool, ["liaison_officer", "auditor"], API_DEPARTMENT,
                            "Liaison Officer Test") as officer,
                user_client(app, pool, ["reviewer"], LEGAL_DEPARTMENT, "Counsel Test") as reviewer,
                user_client(app, pool, ["leader"], API_DEPARTMENT, "Director Test") as leader):
        test_api_support.REVIEW_DESK.update(legal_review=reviewer.http, leadership_approval=leader.http)
        yield officer
