"""PostgreSQL unreachable: every answer is a 503 with Retry-After, never a 500 and never a hang.

The app runs on a pool whose server does not exist (a socket folder with nothing in it), so
every query fails the way it does while PostgreSQL is stopped: in the token lookup of a read,
in the Idempotency-Key claim of a write (a middleware, outside the routes' exception handling),
and in a write without a key. The whole fault suite (tests/faults/test_faults.py) stops a real
PostgreSQL under real processes; this is the quick check of the answers alone.
"""

from __future__ import annotations

import tempfile

import asyncpg
import httpx
from temporalio.client import Client

from api.app import create_app
from api.errors import is_outage
from api.services import Services
from tests.conftest import AUDIT_KEY, TASK_QUEUE


async def test_every_answer_is_a_503_with_retry_after_while_the_database_is_unreachable(client: Client) -> None:
    nowhere = tempfile.mkdtemp(prefix="accord-no-pg-")
    pool = await asyncpg.create_pool(f"postgresql://accord_app@/accord?host={nowhere}", min_size=0, max_size=2)
    try:
        app = create_app(Services(pool=pool, client=client, task_queue=TASK_QUEUE, audit_key=AUDIT_KEY))
        transport = httpx.ASGITransport(app=app)  # nothing may escape the app: every answer is sent
        headers = {"Authorization": "Bearer acc_not-checked-while-the-database-is-down"}
        async with httpx.AsyncClient(transport=transport, base_url="http://accord.test/api/v1", timeout=30) as http:
            answers = [
                await http.get("/cooperations", headers=headers),
                await http.post("/organizations", json={"name": "X", "kind": "company"},
                                headers={**headers, "Idempotency-Key": "outage-1"}),
                await http.post("/organizations", json={"name": "X", "kind": "company"}, headers=headers),
                await http.post("/cooperations/c-1/negotiation-events", json={}, headers=headers),
            ]
    finally:
        await pool.close()
    for response in answers:
        assert response.status_code == 503, f"{response.request.method} {response.request.url}: " \
                                             f"{response.status_code} {response.text}"
        assert int(response.headers["Retry-After"]) > 0
        assert "unavailable" in response.json()["detail"]


def test_what_counts_as_an_outage() -> None:
    assert is_outage(ConnectionRefusedError())
    assert is_outage(asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"))
    assert is_outage(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"))
    try:
        try:
            raise asyncpg.exceptions.CannotConnectNowError("the database system is starting up")
        except Exception as error:
            raise RuntimeError("wrapped") from error
    except RuntimeError as wrapped:
        assert is_outage(wrapped)
    assert not is_outage(ValueError("a bug, not an outage"))
    assert not is_outage(asyncpg.exceptions.UniqueViolationError("duplicate key"))
