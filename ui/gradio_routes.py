"""The door to Gradio's routes: ASGI middleware in front of the mounted Gradio app.

Only what the chat page, the widget and gradio_client's `/ask` need is reachable; everything
else Gradio mounts (uploads, `/file=`, the proxy, monitoring, run history, its name-based REST
routes `/gradio_api/call/*` and `/gradio_api/api/*`, ...) is 404. Each call of an event handler
(`/gradio_api/queue/join`, `/gradio_api/run/*`) is checked by the gate (`ui.gate.Gate.allow`)
before Gradio queues it: the public `/ask` needs the API token (and is refused at once, 503,
when the admission queue is full), the page's own handlers need the page's ticket, and a
queued handler cannot be called around the queue. The ticket reaches the page in a script
this door adds to the pages' HTML. The handlers check again when they run (`Gate.admit`).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from rag.errors import AuthError
from ui.gate import PAGE_HEADER, Gate, busy_message
from ui.guards import send_json_error

PAGES = {"/", "/widget", "/widget/"}
READS = {
    "/config",
    "/config/",
    "/gradio_api/info",
    "/gradio_api/info/",
    "/gradio_api/queue/data",
    "/gradio_api/app_id",  # the page asks it after a lost connection
    "/theme.css",
    "/favicon.ico",
    "/manifest.json",
    "/robots.txt",
}
READ_PREFIXES = ("/assets/", "/static/", "/svelte/", "/gradio_api/heartbeat/")
EVENTS = ("/gradio_api/queue/join", "/gradio_api/run/")
CANCEL = "/gradio_api/cancel"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# Added first in <head>: the page's requests to Gradio carry the ticket. Not a secret (see
# ui.gate.page_ticket); it makes a call of the page's handlers one that came from the page.
TICKET_JS = """<script>(() => {
  const ticket = %s, send = window.fetch.bind(window);
  window.fetch = (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input), location.href);
    const method = (init && init.method) || (input instanceof Request ? input.method : "GET");
    if (url.origin === location.origin && url.pathname.includes("/gradio_api/")
        && method.toUpperCase() === "POST") {
      const headers = new Headers((init && init.headers) || undefined);
      headers.set("X-Rag-Page", ticket);
      init = Object.assign({}, init, {headers});
    }
    return send(input, init);
  };
})();</script>"""


class GradioRoutes:
    """ASGI middleware: the allowlist of Gradio routes, the gate on each event call, and the
    ticket script on the pages (see the module docstring)."""

    def __init__(self, app, blocks: Any, gate: Gate, llm_group: str, routes: list) -> None:
        self.app = app
        self.blocks = blocks
        self.gate = gate
        self.llm_group = llm_group
        self.routes = routes  # the app's routes: its own pass on, with their own guards
        self.script = (TICKET_JS % json.dumps(gate.ticket)).encode()

    def _own(self, scope) -> Any:
        """How one of the app's own routes (not Gradio's mount at "/") takes this path:
        /api/*, /healthz, /docs, and whatever routes are added later (each uses the gate).
        Match.FULL, Match.PARTIAL (the path, with another method) or Match.NONE."""
        from starlette.routing import Match, Mount

        found = [
            route.matches(scope)[0]
            for route in self.routes
            if not (isinstance(route, Mount) and route.path == "")
        ]
        return max(found, default=Match.NONE, key=lambda m: m.value)

    def _allowed(self, scope) -> str:
        """The methods the app's own routes serve at this path (for a 405's Allow)."""
        from starlette.routing import Match

        methods = [m for m in METHODS if self._own({**scope, "method": m}) == Match.FULL]
        return ", ".join(methods + (["HEAD"] if "GET" in methods else []))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.routing import Match

        if scope["method"] == "HEAD":  # HEAD wherever GET is served: GET without the body
            scope, send = {**scope, "method": "GET"}, _headers_only(send)
        path, method = scope["path"], scope["method"]
        reads = method == "GET"
        own = self._own(scope)
        if own == Match.PARTIAL and method != "OPTIONS":
            allow = self._allowed(scope)
            error = f"{method} is not served at {path}; use {allow}. The API is at /docs."
            await send_json_error(send, 405, error, {"Allow": allow})
        elif method == "OPTIONS" or own == Match.FULL:
            await self.app(scope, receive, send)
        elif reads and path in PAGES:
            await self.app(scope, receive, self._with_ticket(send))
        elif reads and (path in READS or path.startswith(READ_PREFIXES)):
            await self.app(scope, receive, send)
        elif method == "POST" and (path.startswith(EVENTS) or path == CANCEL):
            await self._event(scope, receive, send)
        else:
            await send_json_error(
                send, 404, "No such page. The chat page is at /, the API at /docs."
            )

    async def _event(self, scope, receive, send) -> None:
        """Check one call of an event handler, then hand it (body and all) to Gradio."""
        body, more = b"", True
        while more:  # BodyLimit, outside, has read and bounded the body already
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        refusal = self._refusal(scope, body)
        if refusal is not None:
            await send_json_error(send, *refusal)
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _refusal(self, scope, body: bytes) -> tuple[int, str, dict[str, str]] | None:
        """(status, error, headers) when this event call may not go on, else None."""
        from gradio.data_classes import PredictBody

        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        try:
            call = PredictBody.model_validate_json(body or b"{}")
        except ValidationError:
            if path == CANCEL:  # {"session_hash", "fn_index", "event_id"}: the page's only
                call = None
            else:
                return 422, "The request body is not a Gradio event call.", {}
        fn = None if call is None else self._function(path, call.fn_index)
        if call is not None and fn is None:
            return 404, "No such endpoint.", {}
        public = fn is not None and fn.api_name == "ask" and fn.api_visibility == "public"
        try:
            if public:
                self.gate.allow("api", authorization=headers.get("authorization"))
            else:
                self.gate.allow("page", ticket=headers.get(PAGE_HEADER))
        except AuthError as exc:
            status = 401 if public else 403
            return status, str(exc), {"WWW-Authenticate": "Bearer"} if public else {}
        if fn is not None and path.startswith("/gradio_api/run/") and fn.queue is not False:
            return 404, "This endpoint answers through the queue only.", {}
        # /ask is refused at the door when the queue is full (gradio_client says "Queue is
        # full"); the page's question goes on, to be refused in the chat, which then unlocks
        # (Gradio's page would stay locked after a refused join).
        if (
            public
            and fn is not None
            and fn.concurrency_id == self.llm_group
            and not self.gate.has_room()
        ):
            return 503, busy_message(self.gate.waiting), {"Retry-After": "10"}
        return None

    def _function(self, path: str, fn_index: int | None) -> Any:
        """The handler a call names, as Gradio finds it: by index, else by the name in the
        path of /gradio_api/run/<name>."""
        fns = self.blocks.fns
        if fn_index is not None:
            return fns.get(fn_index)
        if path.startswith("/gradio_api/run/"):
            name = path.removeprefix("/gradio_api/run/").strip("/")
            return next((f for f in fns.values() if f.api_name == name), None)
        return None

    def _with_ticket(self, send):
        """`send`, with the ticket script added first in the <head> of an HTML page."""
        start: dict | None = None
        chunks: list[bytes] = []

        async def send_page(message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                html = headers.get(b"content-type", b"").startswith(b"text/html")
                if html and b"content-encoding" not in headers:
                    start = message
                    return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            page = b"".join(chunks).replace(b"<head>", b"<head>" + self.script, 1)
            out = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            out.append((b"content-length", str(len(page)).encode()))
            await send({**start, "headers": out})
            await send({"type": "http.response.body", "body": page})

        return send_page


def _headers_only(send):
    """`send` for a HEAD request: the response's status and headers (Content-Length as for
    GET), never its body."""

    async def send_head(message) -> None:
        if message["type"] == "http.response.body":
            if not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await send(message)

    return send_head
