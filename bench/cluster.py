"""The lifecycle bench's machine: embedded PostgreSQL, the Temporal dev server, and real processes.

What `accord dev` runs, split into processes so that each one's memory and CPU can be told
apart: `accord worker` and `accord api` (the real commands, configured by ACCORD_* variables,
connected as `accord_app` like `make run`), and `python -m bench.floor` (the floor's worker of
trivial workflows). The bench itself only plays the staff's HTTP clients and the floor's client.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench import load
from db.migrate import migrate
from db.pool import connect as connect_db
from runtime.embedded import TemporalDevServer, port_is_open

BIN = Path(sys.executable).parent
DATABASE = "accord_bench_lifecycle"
TASK_QUEUE = "accord-bench-lifecycle"
FLOOR_QUEUE = "accord-bench-floor"
AUDIT_KEY = "accord-bench-lifecycle-audit-key"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Child:
    """One process the bench started, with its log."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def peak_rss_mb(self) -> float | None:
        """The kernel's high-water mark of resident memory (VmHWM): the true peak, not a sample."""
        return _status_mb(self.process.pid, "VmHWM:")

    def rss_mb(self) -> float | None:
        return _status_mb(self.process.pid, "VmRSS:")

    def cpu_seconds(self) -> float | None:
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _status_mb(pid: int, key: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


@dataclass
class Cluster:
    folder: Path
    owner_url: str = ""
    app_url: str = ""
    temporal_address: str = ""
    api_port: int = 0
    children: dict[str, Child] = field(default_factory=dict)
    postgres: load.Server | None = None
    temporal: TemporalDevServer | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    # ------------------------------------------------------------ servers (synchronous: before any loop)

    def start_servers(self) -> None:
        self.postgres = load.server_for(None)
        self.owner_url = self.postgres.start(DATABASE)
        self.app_url = self.owner_url.replace("postgresql://postgres:@", "postgresql://accord_app:@", 1)
        temporal_dir = self.folder / "temporal"
        temporal_dir.mkdir(parents=True, exist_ok=True)
        # WAL pragmas, a SQLite file and ports of its own: TemporalDevServer, as `accord dev` runs it.
        self.temporal = TemporalDevServer(temporal_dir / "temporal.db", free_port(), free_port(),
                                          temporal_dir / "temporal.log")
        self.temporal.start()
        self.temporal_address = self.temporal.address

    async def prepare_database(self) -> None:
        """Migrate as the owner and let `accord_app` log in (what `accord dev` does)."""
        conn = await connect_db(self.owner_url)
        try:
            await migrate(conn)
            await conn.execute("ALTER ROLE accord_app LOGIN")
        finally:
            await conn.close()

    # ------------------------------------------------------------ processes

    def environment(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
        return {**base,
                "ACCORD_DATABASE_URL": self.app_url,
                "ACCORD_TEMPORAL_ADDRESS": self.temporal_address,
                "ACCORD_TASK_QUEUE": TASK_QUEUE,
                "ACCORD_AUDIT_CHECKPOINT_KEY": AUDIT_KEY,
                "ACCORD_DATA_DIR": str(self.folder / "data"),
                "ACCORD_WORKER_METRICS_PORT": "0",
                "ACCORD_LOG_LEVEL": "WARNING"}

    def spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Child:
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=env or self.environment(), cwd=Path(__file__).parent.parent,
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        child = Child(name, process, log)
        self.children[name] = child
        return child

    async def start_processes(self, client: Client) -> None:
        self.api_port = free_port()
        self.spawn("worker", [str(BIN / "accord"), "worker"])
        self.spawn("api", [str(BIN / "accord"), "api", "--port", str(self.api_port)])
        self.spawn("floor-worker", [sys.executable, "-m", "bench.floor", "--worker", self.temporal_address,
                                    FLOOR_QUEUE])
        await self._until(lambda: self._api_ready(), "the API to answer /readyz", 90)
        await self._until(lambda: _polled(client, TASK_QUEUE), "the worker to poll its task queue", 90)
        await self._until(lambda: _polled(client, FLOOR_QUEUE), "the floor worker to poll", 90)

    async def _api_ready(self) -> bool:
        if not port_is_open(self.api_port):
            return False
        async with httpx.AsyncClient(base_url=self.api_url, timeout=5) as http:
            try:
                return (await http.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

    async def _until(self, check, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not await check():
            for child in self.children.values():
                if child.process.poll() is not None:
                    raise RuntimeError(f"{child.name} exited ({child.process.returncode}):\n{child.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            await asyncio.sleep(0.3)

    def memory(self) -> dict[str, dict[str, float | None]]:
        return {name: {"peak_rss_mb": c.peak_rss_mb(), "rss_mb": c.rss_mb(), "cpu_seconds": c.cpu_seconds()}
                for name, c in self.children.items()}

    def server_cpu(self) -> dict[str, float | None]:
        """CPU seconds so far of the Temporal dev server and of PostgreSQL (postmaster and backends)."""
        import psutil

        def tree(process: psutil.Process) -> float:
            total = 0.0
            for p in [process, *process.children(recursive=True)]:
                try:
                    times = p.cpu_times()
                    total += times.user + times.system
                except psutil.Error:
                    pass
            return total

        figures: dict[str, float | None] = {"temporal": None, "postgres": None}
        if self.temporal is not None and self.temporal._process is not None:
            figures["temporal"] = tree(psutil.Process(self.temporal._process.pid))
        if self.postgres is not None:
            data = str(self.postgres.folder / "data")
            for p in psutil.process_iter(["cmdline"]):
                cmdline = p.info["cmdline"] or []
                if any(part.startswith(data) for part in cmdline) and "postgres" in " ".join(cmdline[:1]):
                    figures["postgres"] = tree(p)
                    break
        return figures

    def cpu_snapshot(self) -> dict[str, float | None]:
        """CPU seconds so far of every part, this process (the clients) included."""
        return {**{name: c.cpu_seconds() for name, c in self.children.items()}, **self.server_cpu(),
                "bench clients": time.process_time()}

    def check_alive(self) -> None:
        for child in self.children.values():
            if child.process.poll() is not None:
                raise RuntimeError(f"{child.name} exited ({child.process.returncode}):\n{child.tail()}")

    # ------------------------------------------------------------ the end

    def stop(self) -> None:
        for child in reversed(list(self.children.values())):
            child.stop()
        if self.temporal is not None:
            self.temporal.stop()
        if self.postgres is not None:
            self.postgres.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def new_cluster() -> Cluster:
    folder = Path(tempfile.mkdtemp(prefix="accord-bench-lifecycle-"))
    folder.chmod(0o755)
    return Cluster(folder)


async def _polled(client: Client, queue: str) -> bool:
    answer = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
    return bool(answer.pollers)
