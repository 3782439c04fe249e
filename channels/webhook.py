"""Webhook reminders: a signed JSON POST to a URL an office configured (chat robots, OA systems).

Two risks shape this module.

* The URL is user input, and the worker sits inside a government network. A
  URL naming 127.0.0.1, 10.x or the cloud metadata address would turn the
  reminder service into a way to reach internal systems (SSRF). `check_url`
  refuses every non-public address, and `post_webhook` runs it at send time,
  because a host name that resolved to a public address when the URL was saved
  may resolve elsewhere now. Redirects are not followed: a public endpoint
  could otherwise answer 302 with an internal Location.
* The receiver must be able to tell our requests from forged or replayed ones.
  Each request carries a timestamp and an HMAC-SHA256 signature over
  "<timestamp>.<body>"; `verify` is the receiver's side of that contract (and
  what the tests use). The delivery id travels in a header and stays the same
  across retries, so the receiver can drop duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from channels import ChannelError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
SIGNATURE_PREFIX = "sha256="
ERROR_BODY_LIMIT = 500
"""How much of a refusing receiver's answer goes into the error: enough to read its complaint, not a page."""

_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")
"""Carrier-grade NAT (RFC 6598); Python 3.11 counts it neither private nor global."""
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UnsafeUrl(ValueError):
    """A webhook URL the service will not call.

    `temporary` marks the one case that is not the URL's fault: the resolver
    could not answer right now (EAI_AGAIN), so the check is worth repeating.
    """

    def __init__(self, message: str, temporary: bool = False) -> None:
        super().__init__(message)
        self.temporary = temporary


# ---------------------------------------------------------------- the SSRF guard


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address really leads to, for the forms that carry one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def refusal_reason(address: IPAddress) -> str | None:
    """Why the service must not connect to `address`, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            # ::ffff:127.0.0.1 reaches 127.0.0.1: judge the address it leads to, not its IPv6 wrapping.
            reason = refusal_reason(inner)
            return f"{reason} (inside {address})" if reason else None
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("shared (carrier-grade NAT)", isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    )
    for name, hit in checks:
        if hit:
            return f"{address} is a {name} address"
    # Whatever the named categories miss (documentation and benchmark ranges, ...) is still not the internet.
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def _literal_address(host: str) -> IPAddress | None:
    try:
        # A zone ("fe80::1%eth0") names an interface, not a different address.
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


async def _resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeUrl(f"the host {host!r} cannot be resolved ({exc.strerror})",
                        temporary=exc.errno == socket.EAI_AGAIN) from exc
    addresses = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            address = _literal_address(str(sockaddr[0]))
            if address is not None:
                addresses.append(address)
    if not addresses:
        raise UnsafeUrl(f"the host {host!r} has no IP address")
    return addresses


async def check_url(url: str, allow_private: bool = False) -> None:
    """Raise `UnsafeUrl` unless `url` is http(s) with a host whose every address is public.

    Every resolved address must pass, not just the first: the HTTP client may
    try them in any order. Host names that are numbers in disguise
    ("2130706433", "0x7f.1") are caught too, since the resolver turns them into
    the addresses they stand for. `allow_private` (tests, an on-premises OA
    system) skips the address checks but not the scheme check.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise UnsafeUrl(f"only http and https URLs can be called, not {parts.scheme or 'a URL without a scheme'!r}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a port that is not a number, or out of range
        raise UnsafeUrl(f"malformed URL: {exc}") from exc
    if not host:
        raise UnsafeUrl("the URL has no host")
    if allow_private:
        return
    literal = _literal_address(host)
    addresses = [literal] if literal is not None else await _resolve(host, port or DEFAULT_PORTS[parts.scheme.lower()])
    for address in addresses:
        reason = refusal_reason(address)
        if reason:
            raise UnsafeUrl(reason if literal is not None else f"{host} resolves to {address}: {reason}")


# ---------------------------------------------------------------- signatures


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of "<timestamp>.<body>": the timestamp is signed so it cannot be swapped for a fresh one."""
    return hmac.new(secret.encode("utf-8"), timestamp.encode("utf-8") + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, now: datetime,
           tolerance_seconds: int = 300) -> bool:
    """The receiver's check: the signature matches and the timestamp is within `tolerance_seconds` of `now`.

    The time window is what stops a captured request from being replayed later;
    within it, receivers deduplicate on X-Accord-Delivery.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs(now.timestamp() - int(timestamp)) > tolerance_seconds:
        return False
    given = signature.strip().removeprefix(SIGNATURE_PREFIX).lower()
    expected = sign(secret, timestamp, body)
    # compare_digest takes as long for a near miss as for a wild guess: no timing hints for forgers.
    return hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8"))


# ---------------------------------------------------------------- sending


async def post_webhook(
    url: str,
    secret: str,
    payload: dict[str, Any],
    delivery_id: str,
    *,
    allow_private: bool = False,
    timeout: float = 10.0,
    client: httpx.AsyncClient | None = None,
    now: datetime | None = None,
) -> None:
    """POST `payload` as signed JSON to `url`; raise `ChannelError` unless the receiver answered 2xx.

    Permanent: the URL is unsafe, the receiver answered 4xx (other than 408 and
    429) or a redirect. Retryable: 5xx, 408, 429, connection errors, timeouts.

    The DNS-rebinding window: `check_url` resolves the host, then httpx
    resolves it again to connect. A hostile name server answering with a short
    TTL can give a public address to the check and an internal one to the
    connection. Closing that window needs the connection pinned to the checked
    address, or an egress proxy that enforces the same rules; until then the
    check stops configured and stale URLs, not a determined DNS attacker.

    Error texts name the host only: chat-robot URLs carry their access key in the query string.
    """
    host = urlsplit(url).hostname or "?"
    try:
        async with asyncio.timeout(timeout):
            await check_url(url, allow_private=allow_private)
    except UnsafeUrl as exc:
        raise ChannelError(f"webhook to {host} refused: {exc}", permanent=not exc.temporary) from exc
    except TimeoutError as exc:
        raise ChannelError(f"webhook to {host}: resolving the host timed out", permanent=False) from exc

    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    timestamp = str(int(moment.timestamp()))
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "X-Accord-Delivery": delivery_id,
        "X-Accord-Timestamp": timestamp,
        "X-Accord-Signature": SIGNATURE_PREFIX + sign(secret, timestamp, body),
    }

    try:
        if client is None:
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as own:
                status, answer = await _post(own, url, body, headers, timeout)
        else:
            status, answer = await _post(client, url, body, headers, timeout)
    except httpx.TimeoutException as exc:
        raise ChannelError(f"webhook to {host} timed out after {timeout:g}s", permanent=False) from exc
    except httpx.HTTPError as exc:
        raise ChannelError(f"webhook to {host} failed: {type(exc).__name__}: {exc}", permanent=False) from exc

    if 200 <= status < 300:
        return
    said = f": {answer}" if answer else ""
    if 300 <= status < 400:
        raise ChannelError(f"webhook to {host} answered {status}, a redirect, which is not followed", permanent=True)
    if status in (408, 429) or status >= 500:
        raise ChannelError(f"webhook to {host} answered {status}{said}", permanent=False)
    if 400 <= status < 500:
        raise ChannelError(f"webhook to {host} answered {status}{said}", permanent=True)
    raise ChannelError(f"webhook to {host} answered an unexpected {status}", permanent=False)


async def _post(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str],
                timeout: float) -> tuple[int, str]:
    """The status and the start of the answer; the rest is never read (a receiver could send gigabytes)."""
    request = client.build_request("POST", url, content=body, headers=headers, timeout=timeout)
    # Explicit, so a shared client configured to follow redirects does not follow ours.
    response = await client.send(request, stream=True, follow_redirects=False)
    try:
        if 200 <= response.status_code < 300:
            return response.status_code, ""
        if response.headers.get("content-encoding", "identity").lower() != "identity":
            # Decompressing even one chunk of a hostile answer can take a lot of memory; the status is enough.
            return response.status_code, ""
        head = b""
        async for chunk in response.aiter_raw():
            head += chunk
            if len(head) >= ERROR_BODY_LIMIT:
                break
        return response.status_code, " ".join(head[:ERROR_BODY_LIMIT].decode("utf-8", "replace").split())
    finally:
        await response.aclose()
