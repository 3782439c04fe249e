"""Prometheus metrics of the API and the worker, and the small HTTP server of `accord worker`.

Every metric lives in prometheus_client's default registry of the process: the API serves
it at GET /metrics on its own port, `accord worker` on ACCORD_WORKER_METRICS_PORT (with
/healthz beside it), `accord dev` (API and worker in one process) at the API's /metrics.
The Temporal SDK's own metrics (task latencies, slots, polls, sticky cache) come from its
runtime telemetry on ACCORD_TEMPORAL_METRICS_PORT (runtime/temporal.py), not from here.

Labels are bounded: routes are the route templates (`/api/v1/cooperations/{cooperation_id}`),
never raw paths; action kinds and channels are fixed lists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable, Iterator
from time import perf_counter

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import Receive, Scope, Send

# ---------------------------------------------------------------- the metrics

HTTP_REQUEST_SECONDS = Histogram(
    "accord_http_request_duration_seconds",
    "Time from the first byte of a request to the end of its answer, by method, route template and status.",
    ["method", "route", "status"],
)
ACTIONS = Counter(
    "accord_actions",
    "Staff actions sent to the lifecycle workflows, by command kind and outcome "
    "(accepted; refused: 4xx such as not allowed, not found, stale If-Match, against the rules; failed: 5xx).",
    ["kind", "outcome"],
)
NOTICES_SENT = Counter(
    "accord_notices_sent",
    "Reminder deliveries sent, by channel (inbox, email, webhook).",
    ["channel"],
)
NOTICES_FAILED = Counter(
    "accord_notices_failed",
    "Reminder deliveries marked failed for good (refused permanently, past the retry window, "
    "or nobody to send to), by channel; each one is also in the liaison officer's inbox.",
    ["channel"],
)
NOTICE_RETRIES = Counter(
    "accord_notice_retries",
    "Reminder deliveries that failed for now (the channel is down) and will be retried, by channel.",
    ["channel"],
)
AUDIT_WRITE_SECONDS = Histogram(
    "accord_audit_write_seconds",
    "Time to append one event to the audit chain, waiting for the chain head's row lock included.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


def outcome_of(status: int) -> str:
    return "accepted" if status < 400 else "refused" if status < 500 else "failed"


@contextlib.contextmanager
def timed(histogram: Histogram) -> Iterator[None]:
    """Observe the block's duration, also when it raises (a failed write took time too)."""
    start = perf_counter()
    try:
        yield
    finally:
        histogram.observe(perf_counter() - start)


def exposition() -> bytes:
    return generate_latest()


# ---------------------------------------------------------------- the worker's HTTP server


Health = Callable[[], tuple[bool, str]]


def _alive() -> tuple[bool, str]:
    return True, "ok"


class MetricsApp:
    """GET /metrics (Prometheus text format) and GET /healthz (200 while `health` says so, else 503)."""

    def __init__(self, health: Health = _alive) -> None:
        self.health = health

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        if scope["method"] not in ("GET", "HEAD"):
            status, body, content_type = 405, b'{"detail":"method not allowed"}', "application/json"
        elif scope["path"] == "/metrics":
            status, body, content_type = 200, exposition(), CONTENT_TYPE_LATEST
        elif scope["path"] == "/healthz":
            ok, detail = self.health()
            status = 200 if ok else 503
            body, content_type = json.dumps({"status": "ok" if ok else "unhealthy", "detail": detail}).encode(), \
                "application/json"
        else:
            status, body, content_type = 404, b'{"detail":"not found"}', "application/json"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


class MetricsServer:
    """`accord worker`'s /metrics and /healthz, served by uvicorn on the worker's own event loop.

    The socket is bound in `start`, so a port in use fails there, loudly; port 0 takes a free
    one (`port` tells which). Signals stay with the caller (the worker drains on SIGTERM).
    """

    def __init__(self, port: int, host: str = "0.0.0.0", health: Health = _alive) -> None:
        import uvicorn

        class _NoSignals(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        self.host, self.port = host, port
        self._server = _NoSignals(uvicorn.Config(MetricsApp(health), host=host, port=port, log_config=None,
                                                 log_level="warning", access_log=False, lifespan="off"))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as error:
            sock.close()
            raise OSError(error.errno, f"cannot serve worker metrics on {self.host}:{self.port}: {error.strerror}; "
                                       "set ACCORD_WORKER_METRICS_PORT to a free port, or 0 for none") from None
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the metrics server stopped before it started")
            await asyncio.sleep(0.01)
        return self.port

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._task = None

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
