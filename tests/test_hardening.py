"""Web hardening: security headers on every answer, docs only in development, request limits.

Every answer (200, 401, 404, 413, 422, even an unhandled 500) carries the security headers
with a strict Content-Security-Policy; Strict-Transport-Security only over HTTPS or when the
public URL is https. /docs and /redoc exist in development only, with a relaxed policy for
those paths alone. A body over the limit is a 413 whether it announced its length or came
chunked; JSON nested deeper than the limit is a 422 before FastAPI parses it, never a 500.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest_asyncio

from api.hardening import REDOC_CSP, STRICT_CSP, SWAGGER_CSP, json_depth
from tests.conftest import ALWAYS_OPEN, AUDIT_KEY, TASK_QUEUE
from tests.test_api_support import raw  # noqa: F401  (fixture)

MIB = 1024 * 1024

EXPECTED = {
    "content-security-policy": STRICT_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
HSTS = "max-age=31536000; includeSubDomains"


def hardened(response: httpx.Response, csp: str = STRICT_CSP) -> None:
    """The answer carries every security header with its exact value."""
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    for name, value in {**EXPECTED, "content-security-policy": csp}.items():
        got = response.headers.get(name)
        assert got == value, f"{where}: {name} is {got!r}, expected {value!r}"


def no_hsts(response: httpx.Response) -> None:
    got = response.headers.get("strict-transport-security")
    assert got is None, f"{response.request.url}: Strict-Transport-Security {got!r} over plain HTTP"


def build_app(client, pool: asyncpg.Pool, **overrides):
    """A second app on the same PostgreSQL and Temporal, built like the `app` fixture."""
    from api.app import create_app
    from api.services import Services

    fields = dict(pool=pool, client=client, task_queue=TASK_QUEUE, audit_key=AUDIT_KEY,
                  public_url="http://accord.test", reminder_hour=0, reminder_until_hour=24,
                  leadership_department="Leadership office (tests)", email_enabled=True, calendar_name=ALWAYS_OPEN)
    fields.update(overrides)
    return create_app(Services(**fields))


def http_for(app, base_url: str = "http://accord.test", token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                             base_url=base_url, headers=headers, timeout=60)


@pytest_asyncio.fixture(loop_scope="session")
async def anonymous(app) -> AsyncIterator[httpx.AsyncClient]:
    async with http_for(app) as http:
        yield http


async def organization_count(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM organizations")


async def refused_attempts(pool: asyncpg.Pool, agent: str) -> list[int]:
    """Statuses of the refused attempts the audit recorded for requests with this User-Agent."""
    rows = await pool.fetch("SELECT after FROM audit_events WHERE user_agent = $1 AND outcome = 'refused'", agent)
    return [(r["after"] if isinstance(r["after"], dict) else json.loads(r["after"]))["status"] for r in rows]


# ---------------------------------------------------------------- security headers


async def test_headers_on_200_401_404_422(api, anonymous: httpx.AsyncClient) -> None:
    ok = await api.http.get("/me")
    assert ok.status_code == 200, f"GET /me: {ok.status_code}"
    hardened(ok)
    no_hsts(ok)

    unauthenticated = await anonymous.get("/api/v1/me")
    assert unauthenticated.status_code == 401, f"GET /me without a token: {unauthenticated.status_code}"
    hardened(unauthenticated)

    missing = await api.http.get(f"/cooperations/no-such-{uuid.uuid4().hex[:8]}")
    assert missing.status_code == 404, f"unknown cooperation: {missing.status_code}"
    hardened(missing)

    no_route = await anonymous.get("/no/such/page")
    assert no_route.status_code == 404, f"unknown path: {no_route.status_code}"
    hardened(no_route)

    invalid = await api.http.post("/organizations", json={"name": "", "kind": "not-a-kind"})
    assert invalid.status_code == 422, f"invalid organization: {invalid.status_code}"
    hardened(invalid)


async def test_headers_on_an_unhandled_500(client, pool: asyncpg.Pool) -> None:
    app = build_app(client, pool)

    @app.get("/explode")
    async def explode() -> None:
        raise RuntimeError("boom (test)")

    async with http_for(app) as http:
        answer = await http.get("/explode")
    assert answer.status_code == 500, f"expected 500, got {answer.status_code}"
    hardened(answer)


async def test_hsts_only_over_https(app, api, client, pool: asyncpg.Pool) -> None:
    async with http_for(app, "https://accord.test", api.token) as https:
        secure = await https.get("/api/v1/me")
        assert secure.status_code == 200, f"GET /me over https: {secure.status_code}"
        assert secure.headers.get("strict-transport-security") == HSTS, "no HSTS over https"
        hardened(secure)
        missing = await https.get("/api/v1/cooperations/nothing-here")
        assert missing.headers.get("strict-transport-security") == HSTS, "no HSTS on a 404 over https"

    plain = await api.http.get("/me")
    no_hsts(plain)

    # Behind a TLS-terminating proxy the request arrives as http, but the public URL says https.
    behind_proxy = build_app(client, pool, public_url="https://accord.example.gov.cn")
    async with http_for(behind_proxy, token=api.token) as http:
        answer = await http.get("/api/v1/me")
    assert answer.status_code == 200, f"GET /me behind a proxy: {answer.status_code}"
    assert answer.headers.get("strict-transport-security") == HSTS, "no HSTS with an https public URL"


async def test_docs_in_development_with_their_own_policy(anonymous: httpx.AsyncClient) -> None:
    docs = await anonymous.get("/docs")
    assert docs.status_code == 200, f"/docs in development: {docs.status_code}"
    hardened(docs, SWAGGER_CSP)
    assert "https://cdn.jsdelivr.net" in SWAGGER_CSP and "'unsafe-inline'" in SWAGGER_CSP, "policy too strict"
    assert "'unsafe-inline'" not in STRICT_CSP, "the strict policy allows inline script"

    redoc = await anonymous.get("/redoc")
    assert redoc.status_code == 200, f"/redoc in development: {redoc.status_code}"
    hardened(redoc, REDOC_CSP)

    # The relaxed policy is for those pages only.
    schema = await anonymous.get("/openapi.json")
    assert schema.status_code == 200, f"/openapi.json: {schema.status_code}"
    hardened(schema)
    below = await anonymous.get("/docs/anything")
    hardened(below)


async def test_no_docs_in_production(client, pool: asyncpg.Pool) -> None:
    app = build_app(client, pool, environment="production")
    async with http_for(app) as http:
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            answer = await http.get(path)
            assert answer.status_code == 404, f"{path} in production: {answer.status_code}"
            hardened(answer)  # the strict policy: nothing relaxed in production
        schema = await http.get("/openapi.json")
        assert schema.status_code == 200, f"/openapi.json in production: {schema.status_code}"


# ---------------------------------------------------------------- body size


async def test_body_over_the_limit_with_content_length(api, pool: asyncpg.Pool) -> None:
    agent = f"hardening-test-{uuid.uuid4().hex}"
    before = await organization_count(pool)
    body = json.dumps({"name": "x" * (2 * MIB), "kind": "company"}).encode()
    answer = await api.http.post("/organizations", content=body,
                                 headers={"Content-Type": "application/json", "User-Agent": agent})
    assert answer.status_code == 413, f"2 MiB body: {answer.status_code}"
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "1048576 bytes" in detail, f"unclear 413: {detail!r}"
    hardened(answer)
    assert await organization_count(pool) == before, "an organization was created"
    assert await refused_attempts(pool, agent) == [413], "the audit did not record the 413"


async def test_chunked_body_over_the_limit_is_cut(api, pool: asyncpg.Pool) -> None:
    agent = f"hardening-test-{uuid.uuid4().hex}"
    before = await organization_count(pool)
    chunk = 64 * 1024
    sent = 0

    async def two_mib() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"kind": "company", "name": "'
        for _ in range(2 * MIB // chunk):
            sent += chunk
            yield b"x" * chunk
        yield b'"}'

    answer = await api.http.post("/organizations", content=two_mib(),
                                 headers={"Content-Type": "application/json", "User-Agent": agent})
    assert "content-length" not in {k.lower() for k in answer.request.headers}, "the request was not chunked"
    assert answer.status_code == 413, f"chunked 2 MiB body: {answer.status_code}"
    assert "larger than the limit" in answer.json()["detail"], f"unclear 413: {answer.text}"
    hardened(answer)
    assert sent <= MIB + chunk, f"{sent} bytes were read, the limit is {MIB}"
    assert await organization_count(pool) == before, "an organization was created"
    assert await refused_attempts(pool, agent) == [413], "the audit did not record the 413"


async def test_a_body_within_the_limit_still_works(api) -> None:
    name = f"Limits Test Co. {uuid.uuid4().hex[:8]} " + "长" * 100
    body = {"name": name, "kind": "company", "region": "Guangzhou"}
    answer = await api.http.post("/organizations", json=body)
    assert answer.status_code == 201, f"ordinary organization: {answer.status_code} {answer.text}"
    assert answer.json()["name"] == name, "the body was changed on the way"


async def test_the_limits_come_from_the_services(api, client, pool: asyncpg.Pool) -> None:
    app = build_app(client, pool, max_body_bytes=2048, max_json_depth=4)
    async with http_for(app, token=api.token) as http:
        big = await http.post("/api/v1/organizations", json={"name": "y" * 3000, "kind": "company"})
        assert big.status_code == 413, f"3000 bytes over a 2048-byte limit: {big.status_code}"
        assert "2048 bytes" in big.json()["detail"], f"limit not named: {big.text}"
        deep = await http.post("/api/v1/organizations", content=b'{"name": [[[["x"]]]], "kind": "company"}',
                               headers={"Content-Type": "application/json"})
        assert deep.status_code == 422, f"depth 5 over a limit of 4: {deep.status_code}"
        assert "more than 4 levels" in deep.text, f"unclear 422: {deep.text}"


# ---------------------------------------------------------------- JSON depth


async def test_deeply_nested_json_is_a_422(raw: httpx.AsyncClient, pool: asyncpg.Pool) -> None:  # noqa: F811
    before = await organization_count(pool)
    for body in (b"[" * 1000 + b"]" * 1000,
                 b'{"name": ' + b'{"a": ' * 1000 + b"1" + b"}" * 1000 + b', "kind": "company"}',
                 b"[" * 200_000):  # unbalanced too: refused for its depth before anything parses it
        answer = await raw.post("/organizations", content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 422, f"deep JSON ({len(body)} bytes): {answer.status_code}"
        detail = answer.json()["detail"]
        assert detail[0]["loc"] == ["body"], f"unexpected location: {detail!r}"
        assert "more than 32 levels deep" in detail[0]["msg"], f"unclear message: {detail!r}"
        hardened(answer)
    assert await organization_count(pool) == before, "an organization was created"


async def test_nesting_at_the_limit_reaches_validation(raw: httpx.AsyncClient) -> None:  # noqa: F811
    # 32 levels: the object itself plus 31 nested lists. FastAPI parses it and names the field.
    body = b'{"name": ' + b"[" * 31 + b"]" * 31 + b', "kind": "company"}'
    answer = await raw.post("/organizations", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, f"depth 32: {answer.status_code}"
    locations = [e["loc"] for e in answer.json()["detail"]]
    assert ["body", "name"] in locations, f"not a field error: {locations}"

    # A deep body that does not claim to be JSON is not parsed as JSON at all.
    text = await raw.post("/organizations", content=b"[" * 1000, headers={"Content-Type": "text/plain"})
    assert text.status_code == 422, f"text body: {text.status_code}"


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert json_depth(b"") == 0, "empty"
    assert json_depth(b"42") == 0, "scalar"
    assert json_depth(b'{"a": [1, 2, {"b": []}]}') == 4, "nested"
    assert json_depth(b'["[[[[", "]]]]]]", "\\"[[[", "\\\\", [1]]') == 2, "brackets and escapes in strings"
    assert json_depth(b"[" * 100_000 + b"]" * 100_000) == 100_000, "very deep, without recursion"
