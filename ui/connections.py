"""Connection limits uvicorn lacks: a deadline for receiving each request, and a cap per client.

uvicorn times out only idle keep-alive connections (`timeout_keep_alive`), after a response:
a client that connects and then sends its headers or body a byte at a time is never closed
(slowloris). `TimedH11Protocol` is uvicorn's h11 protocol plus a deadline: a request (headers
and body) must arrive whole within `request_timeout` seconds of the connection opening or of
the previous response, else the client gets 408 and the connection is closed. It also closes
at once a connection from an address that already holds `per_client` open connections
(trusted proxies excepted). uvicorn's `limit_concurrency` bounds all connections together.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

_OPEN = (h11.IDLE, h11.SEND_BODY)  # the client is still sending its request


def _raw_response(status: str, error: str) -> bytes:
    body = json.dumps({"error": error}).encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request deadline and a per-client connection cap."""

    request_timeout: float = 10.0
    per_client: int = 50
    exempt: frozenset[str] = frozenset()  # addresses without a cap (trusted proxies)
    open_by_client: Counter[str]  # shared by the connections of one server

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Count the client's connections (closing one over the cap) and start the deadline."""
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._address = self.client[0] if self.client else ""
        self.open_by_client[self._address] += 1
        if (
            self._address not in self.exempt
            and self.open_by_client[self._address] > self.per_client
        ):
            log.warning("Closed a connection from %s: over %d open", self._address, self.per_client)
            error = f"Too many connections from your address (the limit is {self.per_client})."
            transport.write(_raw_response("429 Too Many Requests", error))
            transport.close()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection."""
        self._disarm()
        self.open_by_client[self._address] -= 1
        if self.open_by_client[self._address] <= 0:
            del self.open_by_client[self._address]
        super().connection_lost(exc)

    def handle_events(self) -> None:
        """uvicorn's, then the deadline is off once the whole request has arrived."""
        super().handle_events()
        if self.conn.their_state not in _OPEN:
            self._disarm()

    def on_response_complete(self) -> None:
        """uvicorn's, then a new deadline for the next request on this connection."""
        super().on_response_complete()
        # A body still arriving keeps its first deadline.
        open_ = not self.transport.is_closing() and self.conn.their_state in _OPEN
        if open_ and self._deadline is None:
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.request_timeout, self._expired)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()  # type: ignore[union-attr]
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state not in _OPEN:
            return
        started = self.cycle is not None and self.cycle.response_started
        if not started:
            error = f"The request did not arrive within {self.request_timeout:g} s."
            self.transport.write(_raw_response("408 Request Timeout", error))
        log.info("Closed a slow connection from %s after %g s", self._address, self.request_timeout)
        self.transport.close()


def timed_protocol(request_timeout: float, per_client: int, exempt: list[str]) -> Any:
    """A `TimedH11Protocol` class with these limits, for `uvicorn.Config(http=...)`."""
    attrs = {
        "request_timeout": request_timeout,
        "per_client": per_client,
        "exempt": frozenset(exempt),
        "open_by_client": Counter(),
    }
    return type("TimedH11Protocol", (TimedH11Protocol,), attrs)
