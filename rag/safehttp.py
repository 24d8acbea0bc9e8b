"""HTTP for `rag fetch` that cannot be turned against the machine it runs on (SSRF).

Only http and https. Every request, and so every redirect hop (redirects are followed here,
one checked hop at a time), resolves the host name once, refuses the request if any address
is loopback, private, link-local (cloud metadata at 169.254.169.254 included), multicast,
reserved or otherwise not global, and then connects to exactly the address it checked: the
URL is rewritten to that IP, with the Host header and TLS server name (and certificate check)
still the host's, so a DNS answer that changes between check and connect (rebinding) changes
nothing. `allowed` networks (RAG_FETCH_ALLOWED_NETWORKS: an intranet, a test's loopback site)
are let through; everything else non-public stays refused, a redirect into them included.
Responses are read in pieces up to a size cap and a total time limit.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from rag.errors import RagError

MAX_REDIRECTS = 5
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def networks(cidrs: list[str]) -> Networks:
    """Parse CIDRs ("10.0.0.0/8", "127.0.0.1"); a bad one raises FetchRefused saying so."""
    try:
        return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs)
    except ValueError as exc:
        raise FetchRefused(
            f'RAG_FETCH_ALLOWED_NETWORKS: {exc}. Give networks like ["10.0.0.0/8"].'
        ) from exc


class FetchRefused(RagError):
    """A URL that `rag fetch` will not reach (scheme, address, size, type); says why."""


def address_problem(ip: IPAddress) -> str | None:
    """Why connecting to `ip` is refused, or None if it is a public address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    kinds = (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local (cloud metadata lives there)", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("not public", not ip.is_global),
    )
    return next((kind for kind, hit in kinds if hit), None)


def resolve(host: str, port: int, allowed: Networks = ()) -> str:
    """The one address to connect to for `host`: every address it resolves to must be public
    or in an `allowed` network."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpx.ConnectError(f"cannot resolve {host}: {exc}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise httpx.ConnectError(f"{host} has no address")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        problem = address_problem(ip)
        if problem and not any(ip in net for net in allowed):
            raise FetchRefused(
                f"{host} resolves to {address}, a {problem} address: refused. To fetch from "
                'such a network on purpose, list it in RAG_FETCH_ALLOWED_NETWORKS (["10.0.0.0/8"]).'
            )
    return addresses[0]


class PinnedTransport(httpx.BaseTransport):
    """Checks each request's host and connects to the checked address (see the module doc)."""

    def __init__(self, allowed: Networks = (), **transport: Any) -> None:
        self.allowed = allowed
        self.inner = httpx.HTTPTransport(**transport)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Resolve, check, pin, send."""
        url = request.url
        if url.scheme not in ("http", "https"):
            raise FetchRefused(f"{url}: only http and https URLs are fetched.")
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        address = resolve(host, port, self.allowed)
        request.url = url.copy_with(host=address)
        request.headers["Host"] = url.netloc.decode("ascii")
        if url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        return self.inner.handle_request(request)

    def close(self) -> None:
        """Close the pooled connections."""
        self.inner.close()


def make_client(
    *, allowed: Networks, timeout: float, user_agent: str, transport: Any = None
) -> httpx.Client:
    """An httpx client that follows no redirects itself and ignores proxy variables (the
    connection must go to the checked address)."""
    return httpx.Client(
        transport=transport or PinnedTransport(allowed),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": user_agent},
    )


@dataclass
class Fetched:
    """One finished GET: the final URL (after redirects), status, headers and body."""

    url: str
    status: int
    headers: httpx.Headers
    body: bytes


def get(
    client: httpx.Client,
    url: str,
    *,
    max_bytes: int,
    deadline: float,
    headers: dict[str, str] | None = None,
) -> Fetched:
    """GET `url`, following up to MAX_REDIRECTS redirects one checked hop at a time; the body
    is cut off (FetchRefused) past `max_bytes` or past `deadline` seconds in all."""
    started = time.monotonic()
    for _ in range(MAX_REDIRECTS + 1):
        if urlsplit(url).scheme not in ("http", "https"):
            raise FetchRefused(f"{url}: only http and https URLs are fetched.")
        with client.stream("GET", url, headers=headers or {}) as response:
            if response.is_redirect and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                continue
            body = _read(response, url, max_bytes, started + deadline)
            return Fetched(url, response.status_code, response.headers, body)
    raise FetchRefused(f"{url}: more than {MAX_REDIRECTS} redirects.")


def _read(response: httpx.Response, url: str, max_bytes: int, until: float) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchRefused(f"{url}: {int(declared):,} bytes is over the {max_bytes:,}-byte cap.")
    parts: list[bytes] = []
    size = 0
    for part in response.iter_bytes():
        size += len(part)
        if size > max_bytes:
            raise FetchRefused(f"{url}: over the {max_bytes:,}-byte cap (RAG_FETCH_MAX_MB).")
        if time.monotonic() > until:
            raise httpx.ReadTimeout(f"{url}: took longer than the time limit")
        parts.append(part)
    return b"".join(parts)
