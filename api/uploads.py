"""Multipart uploads streamed straight into the document store's staging area.

Starlette's own form parser would spool a file part to one temporary file and the store
would then copy it to another; here each chunk of the request goes through the multipart
parser into a `Stager`, which hashes it and writes it once, so a 200 MB scan costs a few
hundred kilobytes of memory and its SHA-256 is known when the last byte arrives. The size
limit is enforced as the bytes arrive (413 at the first byte too many), the small form
fields beside the file are bounded too.

Upload routes are exempt from the API's 1 MiB body limit and from the Idempotency-Key
middleware, which both read a body whole (`is_upload`); their own limit is
Settings.document_max_bytes, and a repeated upload is idempotent by content (the same
bytes as a document's latest version are that version, not a new one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from api.errors import ApiError, field_error
from documents.storage import StagedFile, Stager

# POST here streams a file: /api/v1/cooperations/{id}/documents, …/documents/{doc}/versions, and
# the page form /cooperations/{id}/documents.
_UPLOAD_PATHS = re.compile(r"^(/api/v1)?/cooperations/[^/]+/documents(/[^/]+/versions)?/?$")
MULTIPART_SLACK = 64 * 1024
"""Bytes a request may carry beyond the file itself: boundaries, part headers, small fields."""
MAX_FIELDS = 20
MAX_FIELD_BYTES = 20_000


def is_upload(method: str, path: str, content_type: bytes | None) -> bool:
    """A multipart POST to an upload route; any other body there is held to the usual 1 MiB."""
    return (method == "POST" and bool(_UPLOAD_PATHS.match(path)) and content_type is not None
            and content_type.split(b";")[0].strip().lower() == b"multipart/form-data")


class UploadTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        mib = f" ({limit / (1024 * 1024):g} MiB)"
        super().__init__(413, f"the file is larger than the limit of {limit} bytes{mib}")


@dataclass
class Upload:
    """The form fields of a multipart request and its one file, staged."""

    fields: dict[str, str] = field(default_factory=dict)
    file: StagedFile | None = None
    file_name: str | None = None

    def discard(self) -> None:
        if self.file is not None:
            self.file.discard()


async def receive_upload(request: Request, staging: Path, limit: int, file_field: str = "file") -> Upload:
    """Read a multipart/form-data body: its fields, and the part named `file_field` into `staging`.

    Raises 413 past `limit` file bytes, 422 for a body that is not a well-formed form. On any
    error nothing is left in `staging`."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise field_error(["body"], "send the form as multipart/form-data with the file in the field "
                                    f"`{file_field}`")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit + MULTIPART_SLACK:
        raise UploadTooLarge(limit)
    reader = _FormReader(staging, limit, file_field)
    parser = MultipartParser(options[b"boundary"], reader.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if reader.error is not None:
                raise reader.error
        parser.finalize()
        if reader.error is not None:
            raise reader.error
    except FormParserError as error:
        reader.abandon()
        raise field_error(["body"], f"the multipart body is malformed: {error}") from None
    except BaseException:
        reader.abandon()
        raise
    return reader.result()


class _FormReader:
    """Callbacks for python-multipart's push parser: small fields in memory, the file to a Stager."""

    def __init__(self, staging: Path, limit: int, file_field: str) -> None:
        self._staging, self._limit, self._file_field = staging, limit, file_field
        self._upload = Upload()
        self._stager: Stager | None = None
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name: str | None = None
        self._value = bytearray()
        self._to_file = False
        self.error: ApiError | None = None

    def callbacks(self) -> dict:
        return {"on_part_begin": self._part_begin, "on_part_data": self._part_data, "on_part_end": self._part_end,
                "on_header_field": self._header_field, "on_header_value": self._header_val,
                "on_header_end": self._header_end, "on_headers_finished": self._headers_finished}

    def _fail(self, error: ApiError) -> None:
        if self.error is None:
            self.error = error

    def _part_begin(self) -> None:
        self._disposition, self._name, self._value, self._to_file = b"", None, bytearray(), False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_val(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._name == self._file_field and b"filename" in options:
            if self._stager is not None or self._upload.file is not None:
                self._fail(field_error(["body", self._file_field], "send one file per upload"))
                return
            self._upload.file_name = options[b"filename"].decode("utf-8", "replace")
            self._stager = Stager(self._staging, self._limit)
            self._to_file = True
        elif len(self._upload.fields) >= MAX_FIELDS:
            self._fail(field_error(["body"], f"at most {MAX_FIELDS} form fields"))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        if self._to_file:
            assert self._stager is not None
            if not self._stager.write(data[start:end]):
                self._fail(UploadTooLarge(self._limit))
        elif len(self._value) + (end - start) > MAX_FIELD_BYTES:
            self._fail(field_error(["body", self._name or "?"], f"a form field holds at most {MAX_FIELD_BYTES} bytes"))
        else:
            self._value += data[start:end]

    def _part_end(self) -> None:
        if self.error is not None:
            return
        if self._to_file:
            assert self._stager is not None
            self._upload.file = self._stager.finish()
            self._stager, self._to_file = None, False
        elif self._name:
            try:
                self._upload.fields[self._name] = self._value.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(field_error(["body", self._name], "must be UTF-8 text"))

    def abandon(self) -> None:
        if self._stager is not None:
            self._stager.abandon()
        self._upload.discard()

    def result(self) -> Upload:
        if self._stager is not None:  # the body ended inside the file part
            self.abandon()
            raise field_error(["body", self._file_field], "the file part is incomplete")
        return self._upload
