"""Where document bytes live: content-addressed by SHA-256, written once, read as a stream.

An upload is first staged (streamed to a temporary file while its SHA-256 and size are
computed, in constant memory), then handed to a `BlobStore` under its fingerprint. The same
bytes uploaded twice are stored once. Nothing in the application deletes or overwrites a
stored blob; `verify` reads it back and recomputes the fingerprint.

Two stores: `LocalStore` (a directory, the embedded default under `.data/documents`) and
`S3Store` (documents/s3.py, any S3-compatible service) chosen by settings (`open_store`).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

CHUNK = 256 * 1024
HEAD_BYTES = 8192  # enough of the start of a file to recognise its type


class BlobMissing(Exception):
    """The store has nothing under this fingerprint."""


class StoreUnavailable(Exception):
    """The store could not be reached or refused the operation (the API answers 503)."""


@dataclass
class StagedFile:
    """An upload written to a temporary file, with what was learnt while it streamed in."""

    path: Path
    sha256: str
    size: int
    head: bytes

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class Stager:
    """Streams one upload into a temporary file, hashing as it goes; refuses past `limit` bytes."""

    def __init__(self, directory: Path, limit: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=directory)
        self._file = os.fdopen(fd, "wb")
        self.path = Path(name)
        self._hash = hashlib.sha256()
        self._head = bytearray()
        self.limit = limit
        self.size = 0

    def write(self, data: bytes) -> bool:
        """Add bytes; False (and nothing written) once the upload would pass the limit."""
        if self.size + len(data) > self.limit:
            return False
        self.size += len(data)
        self._hash.update(data)
        if len(self._head) < HEAD_BYTES:
            self._head += data[: HEAD_BYTES - len(self._head)]
        self._file.write(data)
        return True

    def finish(self) -> StagedFile:
        self._file.close()  # made durable by the store that keeps it (LocalStore fsyncs in a thread)
        return StagedFile(self.path, self._hash.hexdigest(), self.size, bytes(self._head))

    def abandon(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class BlobStore(Protocol):
    """A content-addressed store. Implementations must make `put` idempotent."""

    description: str

    async def put(self, staged: StagedFile, content_type: str) -> None:
        """Keep the staged file's bytes under its SHA-256 (nothing to do if already there)."""

    def read(self, sha256: str) -> AsyncIterator[bytes]:
        """The stored bytes in chunks; raises BlobMissing (before the first chunk) if absent."""

    async def exists(self, sha256: str) -> bool: ...


async def fingerprint(store: BlobStore, sha256: str) -> tuple[str, int]:
    """Read a blob back and return its SHA-256 and size as stored now (BlobMissing if gone)."""
    digest, size = hashlib.sha256(), 0
    async for chunk in store.read(sha256):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


class LocalStore:
    """Blobs as read-only files `objects/ab/cd/<sha256>` under one directory.

    Staging happens in `tmp/` of the same directory, so putting a blob is a rename on one
    filesystem: a reader never sees half a file.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.description = f"local directory {self.root}"
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        self.staging = self.root / "tmp"

    def path_of(self, sha256: str) -> Path:
        return self.root / "objects" / sha256[:2] / sha256[2:4] / sha256

    async def put(self, staged: StagedFile, content_type: str) -> None:
        await asyncio.to_thread(self._put, staged)

    def _put(self, staged: StagedFile) -> None:
        target = self.path_of(staged.sha256)
        if target.exists():
            staged.discard()
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(staged.path, "rb") as handle:  # on disk before the name says it is stored
            os.fsync(handle.fileno())
        os.chmod(staged.path, 0o444)
        os.replace(staged.path, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)

    async def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).exists()

    async def read(self, sha256: str) -> AsyncIterator[bytes]:
        try:
            handle = open(self.path_of(sha256), "rb")  # noqa: SIM115 (closed below, across awaits)
        except FileNotFoundError:
            raise BlobMissing(sha256) from None
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk
        finally:
            handle.close()
