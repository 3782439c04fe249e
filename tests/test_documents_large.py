"""A 200 MB signed original through real HTTP: uploaded, stored and downloaded byte for byte at
constant memory.

The app is served by uvicorn on 127.0.0.1 in the test's own event loop, the client streams
the multipart body from a generator and hashes the download as it arrives, so neither side
ever holds the file. Memory is this process's peak resident set (Linux VmHWM, reset through
/proc/self/clear_refs before the transfer) over what it was before: if the server buffered
the file anywhere, the peak would grow by the file's size.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.test_api_support import FRAMEWORK_SIGNED_ON, framework_body, ok, open_cooperation

SIZE = 200 * 1024 * 1024
CHUNK = 1024 * 1024
BOUNDARY = "accord-large-upload"
NAME = "战略合作框架协议（签字版）.pdf"


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self):  # leave signals to pytest
        yield


@asynccontextmanager
async def served(app) -> AsyncIterator[str]:
    from api.app import create_app

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    server = _Server(uvicorn.Config(create_app(replace(app.state.services, public_url=url)), log_level="warning",
                                    access_log=False))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        await task
        listener.close()


def pattern(index: int) -> bytes:
    """Chunk `index` of the file: a PDF header first, then bytes that differ chunk by chunk."""
    block = hashlib.sha256(str(index).encode()).digest() * (CHUNK // 32)
    return b"%PDF-1.4\n" + block[9:] if index == 0 else block


async def multipart_body(fields: dict[str, str], digest) -> AsyncIterator[bytes]:
    for name, value in fields.items():
        yield (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    yield (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{NAME}\"\r\n"
           "Content-Type: application/pdf\r\n\r\n").encode()
    for index in range(SIZE // CHUNK):
        chunk = pattern(index)
        digest.update(chunk)
        yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def test_200_mb_signed_original_round_trip_at_constant_memory(app, api) -> None:
    coop = await open_cooperation(api.http)
    agreement = await coop.draft(framework_body(coop.w))
    await coop.approve_all(agreement)
    if not reset_peak():
        pytest.skip("the peak resident set cannot be reset here (/proc/self/clear_refs)")
    before = rss_kib("VmRSS")
    sent = hashlib.sha256()
    async with served(app) as url, httpx.AsyncClient(base_url=url + "/api/v1", timeout=300,
                                                     headers={"Authorization": f"Bearer {api.token}"}) as http:
        response = await http.post(
            f"/cooperations/{coop.id}/documents",
            content=multipart_body({"kind": "signed_original", "agreement_id": agreement}, sent),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
        uploaded = ok(response, 201)
        assert uploaded["version"]["size_bytes"] == SIZE and uploaded["version"]["sha256"] == sent.hexdigest()
        assert uploaded["version"]["file_name"] == NAME

        received, size = hashlib.sha256(), 0
        path = f"/cooperations/{coop.id}/documents/{uploaded['document']['id']}/versions/1/content"
        async with http.stream("GET", path) as download:
            assert download.status_code == 200
            assert download.headers["content-length"] == str(SIZE)
            assert "filename*=UTF-8''%E6%88%98%E7%95%A5" in download.headers["content-disposition"]
            async for chunk in download.aiter_bytes():
                received.update(chunk)
                size += len(chunk)
    peak_growth_mib = (rss_kib("VmHWM") - before) / 1024
    assert size == SIZE and received.hexdigest() == sent.hexdigest(), "the download is the upload, byte for byte"
    print(f"200 MiB up and down: peak resident set grew by {peak_growth_mib:.1f} MiB")
    assert peak_growth_mib < 64, f"the transfer held {peak_growth_mib:.0f} MiB: something buffered the file"

    # Signing seals it: the same fingerprint in the agreement.
    await coop.sign(agreement, coop.w.gov_id, FRAMEWORK_SIGNED_ON)
    state = await coop.sign(agreement, coop.w.company_id, FRAMEWORK_SIGNED_ON)
    signed = next(a for a in state["agreements"] if a["agreement_id"] == agreement)
    assert signed["signed_document"]["sha256"] == sent.hexdigest()
