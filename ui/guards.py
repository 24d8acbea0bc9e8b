"""Guards of the web server: who may embed the pages and write to it from a browser
(`OriginGuard`, with the origin rules), how big a request body may be (`BodyLimit`), the API
token (`bearer_ok`) and the per-client rate limit (`RateLimiter`).
"""

from __future__ import annotations

import hmac
import json
import re
import threading
import time
from collections import deque

from rag.errors import RateLimitError, SettingsError
from rag.settings import Settings

DEFAULT_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*")
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:.]+\])"
    r"(?::(?P<port>\d{1,5}|\*))?"
)
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_DRAIN_BYTES = 16 * 2**20  # an oversized body is read (and dropped) up to this, then cut off


# ---- origins ------------------------------------------------------------------------------


def origin_patterns(settings: Settings) -> list[str]:
    """The default local origins plus `allowed_origins`, validated (SettingsError if malformed)."""
    patterns = list(DEFAULT_ORIGINS)
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
    return "frame-ancestors 'self' " + " ".join(patterns)


class OriginGuard:
    """ASGI middleware: CSP frame-ancestors on HTML, and 403 on writes from unlisted origins."""

    def __init__(self, app, patterns: list[str]) -> None:
        self.app = app
        self.allowed = re.compile("|".join(f"(?:{origin_regex(p)})" for p in patterns))
        self.csp = frame_ancestors(patterns).encode()

    def origin_ok(self, origin: str, scope: dict) -> bool:
        """True for this server's own origin and the allowed ones."""
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        if host and origin == f"{scope.get('scheme', 'http')}://{host}":
            return True
        return bool(self.allowed.fullmatch(origin))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1")
        if origin and scope["method"] not in _SAFE_METHODS and not self.origin_ok(origin, scope):
            body = json.dumps({"error": f"Requests from {origin} are not allowed."}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                out = list(message.get("headers") or [])
                ctype = dict(out).get(b"content-type", b"")
                if ctype.startswith(b"text/html"):
                    out.append((b"content-security-policy", self.csp))
                if message["status"] == 503 and b"retry-after" not in dict(out):
                    out.append((b"retry-after", b"10"))  # e.g. Gradio's "Queue is full"
                out.append((b"x-content-type-options", b"nosniff"))
                out.append((b"referrer-policy", b"same-origin"))
                message = {**message, "headers": out}
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
            body = json.dumps({"error": error}).encode()
            headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
            await send({"type": "http.response.start", "status": 413, "headers": headers})
            await send({"type": "http.response.body", "body": body})
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
