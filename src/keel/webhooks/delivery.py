"""One HTTP try of a webhook, with the SSRF defences of SPEC §10.

The target's name is resolved at delivery time and every address it resolves to is checked;
the request then goes to the checked address itself (Host header and TLS SNI carry the
name), so a DNS answer that changes between the check and the connect cannot redirect it.
Redirects are not followed; at most 64 KiB of the response is read; the whole exchange has
one deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

MAX_RESPONSE_BYTES = 64 * 1024
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services outside 169.254.0.0/16 (which is refused as link-local anyway).
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("fd00:ec2::254", "100.100.100.200", "192.0.0.192", "169.254.169.254")
)


class TargetRefused(Exception):
    """The URL may not be called: the message says why (shown to the endpoint's owner)."""


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a webhook may not be sent to `address`, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refusal(address.ipv4_mapped, allow_private=allow_private)
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback or address.is_private:
        return None if allow_private else "a loopback or private address"
    if address.is_multicast or address.is_reserved or not address.is_global:
        return "a multicast, reserved or non-global address"
    return None


def check_url(url: str, *, require_https: bool) -> tuple[str, str, int]:
    """The scheme, host and port of a webhook URL, or TargetRefused."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise TargetRefused("the URL is malformed") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or (require_https and scheme != "https"):
        raise TargetRefused("https is required" if require_https else "must be http or https")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("credentials in the URL are not allowed")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise TargetRefused("the port is invalid") from exc
    if not parts.hostname:
        raise TargetRefused("the URL has no host")
    return scheme, parts.hostname, port


async def resolve(host: str, port: int, *, allow_private: bool) -> IPAddress:
    """Resolve `host` now and check every address; the first one is used."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as exc:
            raise TargetRefused("the host name does not resolve") from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise TargetRefused("the host name does not resolve")
    for address in addresses:
        reason = refusal(address, allow_private=allow_private)
        if reason is not None:
            raise TargetRefused(f"the host resolves to {reason}")
    return addresses[0]


async def check_target(url: str, *, require_https: bool, allow_private: bool) -> None:
    """Registration-time check (delivery checks again, as DNS answers change)."""
    _scheme, host, port = check_url(url, require_https=require_https)
    await resolve(host, port, allow_private=allow_private)


@dataclass(frozen=True, slots=True)
class AttemptResult:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    require_https: bool
    allow_private: bool


async def send(
    client: httpx.AsyncClient,
    *,
    target: Target,
    body: str,
    headers: dict[str, str],
    deadline_seconds: float,
) -> AttemptResult:
    """POST `body` to the target once; any 2xx within the deadline is a success."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(deadline_seconds):
            status = await _post(client, target=target, body=body, headers=headers)
    except TargetRefused as exc:
        return _result(started, error=f"refused: {exc}")
    except TimeoutError:
        return _result(started, error=f"timed out after {deadline_seconds:g} s")
    except httpx.HTTPError as exc:
        return _result(started, error=f"{type(exc).__name__}: {str(exc)[:200]}")
    except OSError as exc:
        return _result(started, error=f"{type(exc).__name__}")
    if 300 <= status < 400:
        return _result(started, status_code=status, error="redirect not followed")
    return _result(started, status_code=status)


def _result(
    started: float, *, status_code: int | None = None, error: str | None = None
) -> AttemptResult:
    duration = int((time.perf_counter() - started) * 1000)
    return AttemptResult(status_code=status_code, error=error, duration_ms=duration)


async def _post(
    client: httpx.AsyncClient, *, target: Target, body: str, headers: dict[str, str]
) -> int:
    scheme, host, port = check_url(target.url, require_https=target.require_https)
    address = await resolve(host, port, allow_private=target.allow_private)
    parts = urlsplit(target.url)
    literal = f"[{address}]" if address.version == 6 else str(address)
    pinned = urlunsplit((scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
    default_port = 443 if scheme == "https" else 80
    request = client.build_request(
        "POST",
        pinned,
        content=body.encode(),
        headers={**headers, "host": host if port == default_port else f"{host}:{port}"},
        extensions={"sni_hostname": host} if scheme == "https" else {},
    )
    response = await client.send(request, stream=True, follow_redirects=False)
    try:
        received = 0
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received >= MAX_RESPONSE_BYTES:
                break
    finally:
        await response.aclose()
    return response.status_code
