"""A local SMTP server that keeps whatever it receives: the mail server of `make run`.

On a developer's machine there is no mail server, yet reminders should be
visible end to end, through the real SMTP client code. The sink accepts every
message and writes it to a folder as a `.eml` file that any mail client opens;
the tests read the in-memory copies instead of the folder.

It runs aiosmtpd's `Controller`, which serves from its own thread and event
loop, so it can be started from synchronous code (the CLI) as well as from
inside a running event loop (the tests) without blocking either.
"""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

KEEP_IN_MEMORY = 1_000
"""A long `make run` session must not grow without bound; the folder has every message anyway."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (another process could still take it before we do)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class MailSink:
    """Accept all mail on `host`:`port`, store it in `folder` and in `messages` (the newest 1,000).

    Port 0 picks a free port at construction, so `port` is known before `start()`.
    """

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int = 8025) -> None:
        self.folder = Path(folder)
        self.host = host
        # aiosmtpd checks readiness by connecting to the configured port, so it cannot be 0: pick one now.
        self._port = port or free_port(host)
        self.messages: list[bytes] = []
        self._lock = threading.Lock()
        self._received = 0
        self._controller: Controller | None = None

    @property
    def port(self) -> int:
        return self._port

    def start(self) -> None:
        if self._controller is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        # SMTPUTF8: accept addresses with Chinese local parts too, as a real server might.
        controller = Controller(_Handler(self), hostname=self.host, port=self._port, enable_SMTPUTF8=True)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is None:
            return
        controller, self._controller = self._controller, None
        controller.stop()

    def __enter__(self) -> MailSink:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def store(self, content: bytes) -> Path:
        """Keep one received message; returns the file it was written to."""
        with self._lock:
            self._received += 1
            number = self._received
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.folder / f"{stamp}-{number}.eml"
        # Written aside and renamed, so a mail client watching the folder never opens half a message.
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(content)
        partial.replace(path)
        # Only a stored message is remembered: one refused with 451 will come again.
        with self._lock:
            self.messages.append(content)
            del self.messages[:-KEEP_IN_MEMORY]
        return path


class _Handler:
    """The aiosmtpd handler: runs on the controller's thread."""

    def __init__(self, sink: MailSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content
        if content is None:
            content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        try:
            self._sink.store(content)
        except OSError:
            # Disk full or folder gone: a temporary refusal makes the sender keep the message and retry.
            return "451 4.3.0 could not store the message"
        return "250 OK"
