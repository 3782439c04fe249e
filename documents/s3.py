"""An S3-compatible document store (AWS S3, MinIO, SeaweedFS, Ceph RGW, OSS/COS in S3 mode).

Objects are `<prefix><sha256>` in one bucket, addressed path-style
(`<endpoint>/<bucket>/<key>`), which every S3-compatible service accepts. Requests are
signed with AWS Signature Version 4. An upload sends the SHA-256 computed while staging as
`x-amz-content-sha256`, so the service itself refuses bytes that changed on the way.
Bodies stream in and out: memory stays constant whatever the file size. A single PUT takes
up to 5 GiB, which bounds ACCORD_DOCUMENT_MAX_BYTES for this store.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import httpx

from documents.storage import CHUNK, BlobMissing, StagedFile, StoreUnavailable

MAX_SINGLE_PUT = 5 * 1024**3
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class S3Error(StoreUnavailable):
    """The service could not be reached, or answered something other than success (the message says what)."""


class S3Store:
    def __init__(self, endpoint: str, bucket: str, access_key: str, secret_key: str, region: str = "us-east-1",
                 prefix: str = "documents/", timeout: float = 60.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.bucket, self.prefix, self.region = bucket, prefix, region
        self._access_key, self._secret_key = access_key, secret_key
        self._host = urlsplit(self.endpoint).netloc
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=10.0))
        self.description = f"S3 bucket {bucket} at {self.endpoint} (prefix {prefix!r})"

    async def close(self) -> None:
        await self._client.aclose()

    # ------------------------------------------------------------ the BlobStore interface

    async def exists(self, sha256: str) -> bool:
        response = await self._send("HEAD", self._key(sha256))
        if response.status_code == 404:
            return False
        _check(response, "HEAD")
        return True

    async def put(self, staged: StagedFile, content_type: str) -> None:
        if staged.size > MAX_SINGLE_PUT:
            raise S3Error(f"{staged.size} bytes is more than one S3 PUT takes (5 GiB)")
        if await self.exists(staged.sha256):
            staged.discard()
            return
        headers = {"content-type": content_type, "content-length": str(staged.size)}
        response = await self._send("PUT", self._key(staged.sha256), headers, payload_sha256=staged.sha256,
                                    content=_file_chunks(staged))
        _check(response, "PUT")
        staged.discard()

    async def read(self, sha256: str) -> AsyncIterator[bytes]:
        request = self._request("GET", self._key(sha256))
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as error:
            raise S3Error(f"S3 GET failed: {type(error).__name__}: {error}") from error
        try:
            if response.status_code == 404:
                raise BlobMissing(sha256)
            if response.status_code != 200:
                await response.aread()
                _check(response, "GET")
            async for chunk in response.aiter_bytes(CHUNK):
                yield chunk
        finally:
            await response.aclose()

    async def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (tests and first runs; production creates it beforehand)."""
        response = await self._send("HEAD", "")
        if response.status_code == 404:
            _check(await self._send("PUT", ""), "PUT bucket")

    # ------------------------------------------------------------ signing (SigV4)

    def _key(self, sha256: str) -> str:
        return f"{self.prefix}{sha256}"

    async def _send(self, method: str, key: str, headers: dict[str, str] | None = None, *,
                    payload_sha256: str = _EMPTY_SHA256, content: AsyncIterator[bytes] | None = None) -> httpx.Response:
        try:
            return await self._client.send(self._request(method, key, headers, payload_sha256, content))
        except httpx.HTTPError as error:
            raise S3Error(f"S3 {method} failed: {type(error).__name__}: {error}") from error

    def _request(self, method: str, key: str, headers: dict[str, str] | None = None,
                 payload_sha256: str = _EMPTY_SHA256, content: AsyncIterator[bytes] | None = None) -> httpx.Request:
        path = "/" + quote(self.bucket) + ("/" + quote(key, safe="/~") if key else "")
        now = datetime.now(UTC)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        signed = {**(headers or {}), "host": self._host, "x-amz-date": amz_date,
                  "x-amz-content-sha256": payload_sha256}
        names = sorted(signed)
        canonical = "\n".join([
            method, path, "",
            "".join(f"{n}:{signed[n].strip()}\n" for n in names),
            ";".join(names), payload_sha256,
        ])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key_bytes = ("AWS4" + self._secret_key).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            key_bytes = hmac.new(key_bytes, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        signed["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self._access_key}/{scope}, "
                                   f"SignedHeaders={';'.join(names)}, Signature={signature}")
        del signed["host"]  # httpx sets it from the URL, to the same value
        return self._client.build_request(method, self.endpoint + path, headers=signed, content=content)


async def _file_chunks(staged: StagedFile) -> AsyncIterator[bytes]:
    with open(staged.path, "rb") as handle:
        while chunk := await asyncio.to_thread(handle.read, CHUNK):
            yield chunk


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 300:
        raise S3Error(f"S3 {what} answered {response.status_code}: {response.text[:500]}")
