"""GET /readyz (api/routes/health.py): 200 when this replica can serve, 503 naming what cannot.

The session's PostgreSQL is never stopped: this module starts a second embedded PostgreSQL of
its own (as tests/conftest.py starts the first), stops it, and starts it again. The Temporal
side is the session's dev server, and a client pointed at a port where nothing listens.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from api.app import create_app
from api.services import Services
from db.migrate import migrate
from db.pool import create_pool
from runtime.embedded import EmbeddedPostgres, _create_database, start_embedded_postgres
from tests.conftest import AUDIT_KEY, TASK_QUEUE
from tests.test_api_support import eventually


@dataclass
class SecondServer:
    folder: Path
    server: EmbeddedPostgres

    @property
    def pgdata(self) -> Path:
        return self.folder / "data"

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> str:
        self.server = start_embedded_postgres(self.pgdata, database="accord_ready")
        return self.server.url


@pytest.fixture(scope="module")
def second_pg() -> Iterator[SecondServer]:
    folder = Path(tempfile.mkdtemp(prefix="accord-test-pg-ready-"))
    folder.chmod(0o755)  # the server runs as its own system user when the suite runs as root
    second = SecondServer(folder, start_embedded_postgres(folder / "data", database="accord_ready"))
    yield second
    second.stop()
    shutil.rmtree(folder, ignore_errors=True)


@asynccontextmanager
async def app_on(pool: asyncpg.Pool | Any, client: Client) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Services(pool=pool, client=client, task_queue=TASK_QUEUE, audit_key=AUDIT_KEY))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord.test") as http:
        yield http


async def readyz(http: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await http.get("/readyz")
    assert response.headers["cache-control"] == "no-store"
    return response.status_code, response.json()


async def test_the_test_app_is_ready(app) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://accord.test") as http:
        status, body = await readyz(http)
        assert (await http.get("/healthz")).status_code == 200
    assert status == 200
    assert body == {"status": "ready", "checks": {"postgresql": "ok", "migrations": "ok", "temporal": "ok"},
                    "failed": [], "detail": None}


async def test_unready_while_postgresql_is_down_and_ready_when_it_returns(second_pg: SecondServer,
                                                                          client: Client) -> None:
    url = second_pg.server.url
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    pool = await create_pool(url, max_size=2)
    try:
        async with app_on(pool, client) as http:
            status, body = await readyz(http)
            assert (status, body["failed"]) == (200, [])

            await asyncio.to_thread(second_pg.stop)
            status, body = await readyz(http)
            assert status == 503
            assert body["status"] == "unready"
            assert body["failed"] == ["postgresql"]
            assert body["checks"]["postgresql"].startswith("unreachable")
            assert body["checks"]["migrations"].startswith("not checked")
            assert body["checks"]["temporal"] == "ok"
            assert body["detail"].startswith("postgresql unreachable")
            assert (await http.get("/healthz")).status_code == 200  # alive all the same: no restart wanted

            assert await asyncio.to_thread(second_pg.start) == url  # the same socket: the pool reconnects

            async def ready_again() -> bool:
                return (await readyz(http))[0] == 200

            await eventually(ready_again, timeout=20, interval=0.25)
    finally:
        await pool.close()


async def test_unready_while_migrations_are_pending(second_pg: SecondServer, client: Client) -> None:
    server = second_pg.server.server
    await _create_database(server.get_uri(), "accord_empty")  # type: ignore[attr-defined]  # nobody migrated it
    empty = server.get_uri("accord_empty")  # type: ignore[attr-defined]
    pool = await create_pool(empty, max_size=2)
    try:
        async with app_on(pool, client) as http:
            status, body = await readyz(http)
            assert status == 503
            assert body["failed"] == ["migrations"]
            assert body["checks"]["postgresql"] == "ok"
            assert body["checks"]["migrations"].startswith("pending: 001_schema.sql, 002_audit_trail.sql")
            assert body["detail"].startswith("migrations pending: 001_schema.sql")
            async with pool.acquire() as conn:
                await migrate(conn)
            status, body = await readyz(http)
            assert (status, body["failed"]) == (200, [])
    finally:
        await pool.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_unready_while_temporal_is_unreachable(pool: asyncpg.Pool) -> None:
    nowhere = await Client.connect(f"127.0.0.1:{closed_port()}", lazy=True)
    async with app_on(pool, nowhere) as http:
        status, body = await readyz(http)
    assert status == 503
    assert body["failed"] == ["temporal"]
    assert body["checks"]["postgresql"] == "ok" and body["checks"]["migrations"] == "ok"
    assert body["detail"].startswith("temporal unreachable")
