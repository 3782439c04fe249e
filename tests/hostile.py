"""Helpers of the API fuzzer (`tests/test_api_fuzz.py`); this module holds no tests itself.

- `call`: one request straight into the ASGI app, below any HTTP client, so header values
  no client would send (CR/LF, NUL, bytes that are not Latin-1 text) reach the app as a
  server would hand them over. An exception the app raises is kept as its 500 answer.
- `BridgeTransport`: Schemathesis's `requests` transport with an adapter that sends every
  request through `call` on the test session's event loop. Schemathesis's own ASGI transport
  runs the app on an event loop of its own in another thread, where the session's asyncpg
  pool and Temporal client cannot be used; with the bridge, Hypothesis runs in a worker
  thread and every request (the checks' own probes too) runs on the session loop.
- The hostile corpus, and a walk over `app.openapi()`: which operations take a JSON body
  or string parameters, where the strings go in a body, and a body of the right shape for
  each (for the operations the tests have no valid template of).
"""

from __future__ import annotations

import asyncio
import http
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import requests
import requests.adapters
import urllib3
from schemathesis.transport.requests import REQUESTS_TRANSPORT, RequestsTransport

HOST = "accord.test"
BASE_URL = f"http://{HOST}"
# The fuzzer's own source address (TEST-NET-2): its failed sign-ins count against this address,
# not against the one every other test signs in from (the login throttle counts per address).
FUZZ_CLIENT = ("198.51.100.23", 40123)


# ---------------------------------------------------------------- one request into the app


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    error: str | None = None  # an exception the app raised (its answer is then a 500)

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    def json(self) -> Any:
        return json.loads(self.body)

    def brief(self) -> str:
        text = self.body[:300].decode("utf-8", "replace")
        return f"{self.status} {text}" + (f" [raised {self.error}]" if self.error else "")


async def call(app: Any, method: str, target: str, *, headers: list[tuple[bytes, bytes]] | None = None,
               body: bytes = b"", chunks: int = 0, client: tuple[str, int] = FUZZ_CLIENT,
               timeout: float = 60) -> Answer:
    """Send one request into the ASGI `app`, as uvicorn would hand it over.

    `target`: the path and query as on the wire (percent-encoded; the path is decoded as uvicorn
    decodes it). `headers`: raw bytes, passed on as given; a Content-Length is added when the
    caller sets none and there is a body. `chunks`: the body in that many pieces and without a
    Content-Length, as a chunked upload arrives.
    """
    path, _, query = target.partition("?")
    raw_headers = [(b"host", HOST.encode())]
    raw_headers += [(k.lower(), v) for k, v in headers or []]
    if chunks:
        raw_headers.append((b"transfer-encoding", b"chunked"))
    elif body and not any(k == b"content-length" for k, _ in raw_headers):
        raw_headers.append((b"content-length", str(len(body)).encode()))
    size = -(-len(body) // chunks) if chunks else len(body)
    pieces = [body[i:i + size] for i in range(0, len(body), size)] if body and size else [b""]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method.upper(),
        "scheme": "http", "path": unquote(path), "raw_path": path.encode("latin-1"),
        "root_path": "", "query_string": query.encode("latin-1"), "headers": raw_headers,
        "client": client, "server": (HOST, 80),
    }
    sent = 0
    response_complete = asyncio.Event()
    status: int | None = None
    answer_headers: list[tuple[bytes, bytes]] = []
    received: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent < len(pieces):
            sent += 1
            return {"type": "http.request", "body": pieces[sent - 1], "more_body": sent < len(pieces)}
        await response_complete.wait()  # like a client that keeps the connection open until answered
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, answer_headers
        if message["type"] == "http.response.start":
            status, answer_headers = message["status"], list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            received.append(message.get("body", b""))
            if not message.get("more_body", False):
                response_complete.set()

    error = None
    try:
        await asyncio.wait_for(app(scope, receive, send), timeout)
    except Exception as exc:  # noqa: BLE001 - the app's crash is an answer here (Starlette sent a 500 first)
        error = f"{type(exc).__name__}: {exc}"[:500]
    finally:
        response_complete.set()
    if status is None:
        return Answer(500, [], b"", error or "the app sent no answer")
    return Answer(status, answer_headers, b"".join(received), error)


# ---------------------------------------------------------------- Schemathesis's requests, on the session loop


class _Headers:
    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self.headers = headers

    def get_all(self, name: str, default: Any = None) -> list[str] | None:
        return [v for k, v in self.headers if k.lower() == name.lower()] or default


class _OriginalResponse:
    """What `requests` reads cookies from."""

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self.msg = _Headers(headers)
        self.closed = False

    def isclosed(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


class BridgeAdapter(requests.adapters.HTTPAdapter):
    """Answers a `requests` request with `call(app, …)` run on `loop` (the caller's thread waits)."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop, timeout: float, errors: list[str]) -> None:
        super().__init__()
        self.app, self.loop, self.timeout = app, loop, timeout
        self.errors = errors  # exceptions the app raised, for the report

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        parts = urlsplit(request.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = [(k.encode("latin-1"), v.encode("latin-1") if isinstance(v, str) else v)
                   for k, v in request.headers.items()]
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        future = asyncio.run_coroutine_threadsafe(
            call(self.app, request.method or "GET", target, headers=headers, body=body, timeout=self.timeout),
            self.loop)
        answer = future.result(self.timeout + 5)
        if answer.error:
            self.errors.append(f"{request.method} {target[:200]}: {answer.error}")
        text_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in answer.headers]
        try:
            reason = http.HTTPStatus(answer.status).phrase
        except ValueError:
            reason = ""
        raw = urllib3.HTTPResponse(body=io.BytesIO(answer.body), headers=text_headers, status=answer.status,
                                   version=11, reason=reason, preload_content=False,
                                   original_response=_OriginalResponse(text_headers), request_method=request.method)
        return self.build_response(request, raw)


class BridgeTransport(RequestsTransport):
    """Schemathesis's `requests` transport, every request (the checks' probes too) through the bridge."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop, timeout: float = 60) -> None:
        super().__init__()
        self._copy_serializers_from(REQUESTS_TRANSPORT)
        self.app, self.loop, self.timeout = app, loop, timeout
        self.errors: list[str] = []

    def send(self, case: Any, *, session: requests.Session | None = None, **kwargs: Any) -> Any:
        if session is not None:
            return super().send(case, session=session, **kwargs)
        # A fresh session each time: no cookie carries over from one request to the next.
        with requests.Session() as fresh:
            adapter = BridgeAdapter(self.app, self.loop, self.timeout, self.errors)
            fresh.mount("http://", adapter)
            fresh.mount("https://", adapter)
            return super().send(case, session=fresh, **kwargs)


def bridged(schema: Any, bridge: BridgeTransport) -> Any:
    """`schema`, sending through `bridge`: the schema's `transport` is a property (the `requests`
    transport for a schema without an app), so the schema gets a subclass that names the bridge."""

    class BridgedSchema(type(schema)):  # type: ignore[misc]
        @property
        def transport(self) -> BridgeTransport:
            return bridge

    schema.__class__ = BridgedSchema
    return schema


# ---------------------------------------------------------------- the hostile corpus

TEN_MB = 10 * 1024 * 1024

# Text values: each replaces one string field, one string query parameter or one path id.
HOSTILE_TEXT: dict[str, str] = {
    "nul": "before\x00after",
    "only-nul": "\x00",
    "1mb": "长" * 100_000 + "x" * 700_000,  # a million bytes of UTF-8: a body with it is still under 1 MiB
    "sql-or": "' OR 1=1 --",
    "sql-drop": "x'); DROP TABLE cooperations; --",
    "sql-union": "\" UNION SELECT token_hash FROM api_tokens --",
    "sql-like": "%_\\%",
    "crlf": "a\r\nX-Injected: y",
    "crlf-only": "\r\n\r\n",
    "bidi-emoji": "\u202e😀\ufeff\u200b",
}
# A lone surrogate is not UTF-8; in JSON it travels as the escape \ud800: valid JSON syntax,
# which Python's json module decodes into an unpaired surrogate that no UTF-8 encoder takes.
LONE_SURROGATE = "\ud800"
LONE_SURROGATE_JSON = b'"\\ud800"'
DEEP_JSON_DEPTH = 1000


def deep_json(depth: int = DEEP_JSON_DEPTH) -> bytes:
    return b'{"a": ' * (depth - 1) + b"[]" + b"}" * (depth - 1)


def json_bytes(value: Any) -> bytes:
    """JSON text of `value` in UTF-8; with a lone surrogate in it, all in \\uXXXX escapes instead
    (valid JSON, which a UTF-8 encoder would refuse to write)."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True).encode("ascii")


def query_value(text: str) -> str:
    """Percent-encode for a query string or a path segment; a lone surrogate becomes %ED%A0%80."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


# Header values no HTTP client sends: raw bytes as a server would pass them on.
HOSTILE_HEADER_VALUES: dict[str, bytes] = {
    "crlf": b"a\r\nX-Injected: y",
    "lf": b"a\nSet-Cookie: accord_session=stolen",
    "nul": b"a\x00b",
    "utf8": "键值-😀".encode(),
    "latin1-high": b"\xff\xfe\xfd",
    "1kb-spaces": b" " * 1024,
    "64kb": b"k" * 65536,
}


# ---------------------------------------------------------------- walking the OpenAPI document


@dataclass
class Operation:
    method: str
    path: str  # as in the OpenAPI document, e.g. /api/v1/projects/{project_id}
    spec: dict[str, Any]
    path_params: list[str] = field(default_factory=list)
    query_params: list[dict[str, Any]] = field(default_factory=list)  # string-valued ones
    body_schema: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def takes_json(self) -> bool:
        return self.body_schema is not None


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _is_string(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    schema = resolve(document, schema)
    options = schema.get("anyOf") or schema.get("oneOf") or [schema]
    return any(resolve(document, o).get("type") == "string" for o in options)


def operations(document: dict[str, Any]) -> list[Operation]:
    """Every operation of the document (sorted), with its path ids, string query parameters and JSON body."""
    found = []
    for path, item in sorted(document["paths"].items()):
        for method, spec in sorted(item.items()):
            op = Operation(method.upper(), path, spec)
            for parameter in spec.get("parameters", []):
                parameter = resolve(document, parameter)
                if parameter["in"] == "path":
                    op.path_params.append(parameter["name"])
                elif parameter["in"] == "query" and _is_string(document, parameter.get("schema", {})):
                    op.query_params.append(parameter)
            content = spec.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                op.body_schema = content["application/json"].get("schema", {})
            found.append(op)
    return found


def plausible(document: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> Any:
    """A value of the right shape for `schema` (not necessarily one the app accepts): every
    property of an object, one element in an array, the first option of a union."""
    schema = resolve(document, schema)
    if depth > 8:
        return None
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [resolve(document, o) for o in schema[key]]
            options = [o for o in options if o.get("type") != "null"] or options
            return plausible(document, options[0], depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {name: plausible(document, sub, depth + 1) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [plausible(document, schema.get("items", {}), depth + 1)]
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    if kind == "number":
        return 1
    if kind == "boolean":
        return False
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date":
            return "2024-01-02"
        if fmt == "date-time":
            return "2024-01-02T03:04:05+08:00"
        if fmt in ("uri", "url"):
            return "https://example.test/hook"
        if fmt == "email":
            return "fuzz@example.test"
        if "pattern" in schema and "\\d" in schema["pattern"]:  # money: "^-?\d+(\.\d+)?$" and the like
            return "1.00"
        return "fuzz"
    return "fuzz"


def string_slots(document: dict[str, Any], schema: dict[str, Any], value: Any,
                 at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where in `value` (a plausible body) a string goes: the paths of every string leaf."""
    schema = resolve(document, schema)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [resolve(document, o) for o in schema[key]]
            options = [o for o in options if o.get("type") != "null"] or options
            schema = options[0]
            break
    if isinstance(value, str):
        yield at
    elif isinstance(value, dict):
        properties = schema.get("properties", {})
        for name, sub in value.items():
            yield from string_slots(document, properties.get(name, {}), sub, (*at, name))
    elif isinstance(value, list) and value:
        yield from string_slots(document, schema.get("items", {}), value[0], (*at, 0))


def replaced(value: Any, at: tuple[Any, ...], new: Any) -> Any:
    if not at:
        return new
    head, rest = at[0], at[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = replaced(copy[head], rest, new)
    return copy


def fill_path(path: str, ids: dict[str, str]) -> str:
    """The path template with each {name} replaced by ids[name] (percent-encoded)."""
    for name, value in ids.items():
        path = path.replace("{" + name + "}", query_value(value))
    return path
