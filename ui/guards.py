"""Guards of the web server: which Host names it answers to (`HostGuard`), who may embed the
pages and write to it from a browser (`OriginGuard`, with the origin rules), how big a request
body may be (`BodyLimit`), an id for every request (`RequestId`), the API token (`bearer_ok`)
and the per-client rate limit (`RateLimiter`).
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from rag.errors import RateLimitError, SettingsError
from rag.settings import Settings

log = logging.getLogger(__name__)

LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_BINDS = ("0.0.0.0", "::", "[::]", "")
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:.]+\])"
    r"(?::(?P<port>\d{1,5}|\*))?"
)
_HOST = re.compile(r"(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:.]+\]|\*")
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_DRAIN_BYTES = 16 * 2**20  # an oversized body is read (and dropped) up to this, then cut off


async def send_json_error(send, status: int, error: str, headers: dict[str, str] | None = None):
    """Send a small JSON error response `{"error": error}` through ASGI `send`."""
    out = [(b"content-type", b"application/json"), (b"x-content-type-options", b"nosniff")]
    out += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": json.dumps({"error": error}).encode()})


# ---- hosts --------------------------------------------------------------------------------


def allowed_hosts(settings: Settings) -> list[str]:
    """The Host names the server answers to: its bind address (unless it is a wildcard such as
    0.0.0.0), localhost, 127.0.0.1, [::1] and `allowed_hosts` ("*": any; SettingsError if
    malformed)."""
    bind = settings.host.strip()
    bind = f"[{bind}]" if ":" in bind and not bind.startswith("[") else bind
    hosts = [] if bind in WILDCARD_BINDS else [bind.lower()]
    for raw in [*LOCAL_HOSTS, *settings.allowed_hosts]:
        host = raw.strip().lower()
        if not _HOST.fullmatch(host):
            raise SettingsError(
                f"RAG_ALLOWED_HOSTS has {raw!r}, which is not a host name. Use names like "
                '"rag.intranet.example", "*.intranet.example" or "10.0.0.5", without scheme '
                "or port."
            )
        if host not in hosts:
            hosts.append(host)
    return hosts


class HostGuard:
    """ASGI middleware, outermost: Starlette's `TrustedHostMiddleware` (400 for a Host header
    not in `hosts`, which is what a DNS-rebinding page sends), the refusal as JSON that names
    the setting to change."""

    def __init__(self, app, hosts: list[str]) -> None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        self.app = app
        self.check = TrustedHostMiddleware(self._passed, allowed_hosts=hosts, www_redirect=False)

    async def _passed(self, scope, receive, send) -> None:
        scope["rag.host_ok"] = True
        await self.app(scope, receive, send)

    async def __call__(self, scope, receive, send) -> None:
        async def refuse_or_pass(message) -> None:
            if scope.get("rag.host_ok"):
                await send(message)
            elif message["type"] == "http.response.start":
                host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
                log.warning("Refused a request for Host %r (not in RAG_ALLOWED_HOSTS)", host[:200])
                await send_json_error(
                    send,
                    400,
                    "This server does not answer to that host name. If the name is yours, add "
                    "it to RAG_ALLOWED_HOSTS.",
                )

        await self.check(scope, receive, refuse_or_pass)


class RequestId:
    """ASGI middleware: an id for every request, in `scope["state"]["request_id"]` and the
    `X-Request-ID` response header, so that an error a user reports can be found in the log."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = secrets.token_hex(6)
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-request-id", rid.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


def request_id(scope: Mapping[str, Any] | None) -> str:
    """The id `RequestId` gave this request (a new one outside a request)."""
    state = (scope or {}).get("state") or {}
    return str(state.get("request_id") or secrets.token_hex(6))


# ---- origins ------------------------------------------------------------------------------


def origin_patterns(settings: Settings) -> list[str]:
    """The origins of the allowed hosts (any port, http or https) plus `allowed_origins`,
    validated (SettingsError if malformed). Never the request's own Host: that is what a
    DNS-rebinding page controls."""
    patterns = [
        f"{scheme}://{host}:*"
        for host in allowed_hosts(settings)
        if host != "*"
        for scheme in ("http", "https")
    ]
    for raw in settings.allowed_origins:
        origin = raw.strip().rstrip("/")
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise SettingsError(
                f"RAG_ALLOWED_ORIGINS has {raw!r}, which is not an origin. Use entries like "
                '"https://intranet.example.com", "https://*.example.com" or "http://host:*".'
            )
        if origin not in patterns:
            patterns.append(origin)
    return patterns


def origin_regex(pattern: str) -> str:
    """A regex matching the origins that one pattern (with optional * wildcards) allows."""
    if pattern == "*":
        return r"[^\s]+"
    m = _ORIGIN.fullmatch(pattern)
    if m is None:
        raise SettingsError(f"Not an origin pattern: {pattern!r}")
    host = m["host"]
    host_re = (
        r"(?:[A-Za-z0-9-]+\.)+" + re.escape(host[2:]) if host.startswith("*.") else re.escape(host)
    )
    port = m["port"]
    port_re = "" if port is None else r"(?::\d{1,5})?" if port == "*" else ":" + port
    return f"{m['scheme']}://{host_re}{port_re}"


def frame_ancestors(patterns: list[str]) -> str:
    """The CSP header value that lets only these origins (and this one) frame the pages."""
    if "*" in patterns:
        return "frame-ancestors *"
    sources = [p for p in patterns if "[" not in p]  # CSP has no syntax for IPv6 literals
    return "frame-ancestors 'self' " + " ".join(sources)


class OriginGuard:
    """ASGI middleware: CSP frame-ancestors on HTML, and 403 on writes from unlisted origins."""

    def __init__(self, app, patterns: list[str]) -> None:
        self.app = app
        self.allowed = re.compile("|".join(f"(?:{origin_regex(p)})" for p in patterns))
        self.csp = frame_ancestors(patterns).encode()
        self.frame_options = b"" if "*" in patterns else b"SAMEORIGIN"

    def origin_ok(self, origin: str) -> bool:
        """True for the allowed origins (the allowed hosts' and `allowed_origins`)."""
        return bool(self.allowed.fullmatch(origin))

    def refused_embedder(self, path: str, headers: dict[bytes, bytes]) -> str | None:
        """The origin of a page that frames the widget without being allowed to (from the
        browser's Sec-Fetch-Dest and Referer), else None. Without a Referer, the browser's own
        refusal (CSP frame-ancestors) stands."""
        if path not in ("/widget", "/widget/") or headers.get(b"sec-fetch-dest") != b"iframe":
            return None
        parts = urlsplit(headers.get(b"referer", b"").decode("latin-1"))
        embedder = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
        return embedder if embedder and not self.origin_ok(embedder) else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1")
        if origin and scope["method"] not in _SAFE_METHODS and not self.origin_ok(origin):
            await send_json_error(send, 403, f"Requests from {origin[:200]} are not allowed.")
            return
        embedder = self.refused_embedder(scope["path"], headers)
        if embedder is not None:
            await send_refused_embed(send, embedder)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                out = list(message.get("headers") or [])
                ctype = dict(out).get(b"content-type", b"")
                if ctype.startswith(b"text/html"):  # one CSP header: the page's policy, if any
                    csp = b"; ".join([v for k, v in out if k == b"content-security-policy"])
                    out = [(k, v) for k, v in out if k != b"content-security-policy"]
                    out.append(
                        (b"content-security-policy", b"; ".join(filter(None, [csp, self.csp])))
                    )
                    if self.frame_options:  # for browsers without CSP; others ignore it
                        out.append((b"x-frame-options", self.frame_options))
                if message["status"] == 503 and b"retry-after" not in dict(out):
                    out.append((b"retry-after", b"10"))  # e.g. Gradio's "Queue is full"
                out.append((b"x-content-type-options", b"nosniff"))
                out.append((b"referrer-policy", b"same-origin"))
                message = {**message, "headers": out}
            await send(message)

        await self.app(scope, receive, send_with_headers)


REFUSED_EMBED = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>This chat cannot be shown here</title></head>
<body style="font: 15px/1.5 system-ui, sans-serif; color: #1f1f24; margin: 1.2em">
<h1 style="font-size: 1.2em">This chat cannot be shown on this page</h1>
<p>The news archive's chat only appears on pages its administrator allows, and
<strong>%(origin)s</strong> is not one of them.</p>
<p>Administrator: add <code>"%(origin)s"</code> to <code>RAG_ALLOWED_ORIGINS</code> (a JSON list,
e.g. <code>RAG_ALLOWED_ORIGINS='["%(origin)s"]'</code>) and restart <code>rag serve</code>; the
server then lets this origin frame the widget (CSP <code>frame-ancestors</code>).</p>
</body></html>"""


async def send_refused_embed(send, origin: str) -> None:
    """The page a refused embedder's frame shows instead of the widget: what to change. It
    holds no part of the app, so any page may frame it."""
    body = (REFUSED_EMBED % {"origin": html.escape(origin[:200])}).encode()
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'"),
        (b"x-content-type-options", b"nosniff"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: 413 for request bodies over `max_bytes`, with or without Content-Length.

    The body is read here (never more than `max_bytes` kept) and handed on to the app whole.
    An oversized body is read on and dropped up to `_DRAIN_BYTES`, so that the client, still
    sending, gets the 413 instead of a reset connection.
    """

    def __init__(self, app, max_kb: int) -> None:
        self.app = app
        self.max_kb = max_kb
        self.max_bytes = max_kb * 1024

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in _SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        too_big = declared.isdigit() and int(declared) > self.max_bytes
        chunks: list[bytes] = []
        size, more = 0, not too_big or int(declared) <= _DRAIN_BYTES
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            size += len(message.get("body", b""))
            too_big = too_big or size > self.max_bytes
            if not too_big:
                chunks.append(message.get("body", b""))
            more = message.get("more_body", False) and size <= _DRAIN_BYTES
        if too_big:
            error = (
                f"The request body is over the limit of {self.max_kb:,} KiB (RAG_MAX_BODY_KB). "
                "Send a shorter question or less history."
            )
            await send_json_error(send, 413, error, {"Connection": "close"})
            return
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: only http.disconnect comes
            replayed = True
            return whole

        await self.app(scope, replay, send)


# ---- the API token and the rate limit -------------------------------------------------------


def bearer_ok(authorization: str | None, token: str) -> bool:
    """True when no token is required, or `authorization` is "Bearer <token>" (constant time)."""
    if not token:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


BEARER_HELP = "Missing or wrong API token: send `Authorization: Bearer <token>`."


class RateLimiter:
    """Sliding one-minute window of question counts per client key."""

    def __init__(self, per_minute: int, window: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window = window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Count one question for `key`, or raise RateLimitError when over the limit."""
        now = time.monotonic()
        with self._lock:
            if len(self._hits) > 10_000:  # forget idle clients
                cutoff = now - self.window
                self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > cutoff}
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.per_minute:
                wait = max(1, int(hits[0] + self.window - now) + 1)
                raise RateLimitError(
                    f"Too many questions: the limit is {self.per_minute} per minute. "
                    f"Try again in {wait} s.",
                    retry_after=wait,
                )
            hits.append(now)
