"""The archive as a Model Context Protocol server (the official `mcp` SDK, `MCPServer`), with
two tools: `search_articles` (passages with their sources) and `ask` (the verified answer with
its citations).

Two transports, one gate: `rag mcp` speaks MCP over stdio (an agent client starts it), and
`rag serve` answers streamable HTTP at /mcp (stateless: any app instance can take any
request). Both pass the gate as /api does (`ChatService.admit`: the bearer token over HTTP,
question check, rate per client, the one admission queue; `search_articles`: `Gate.check`);
over HTTP the Host allowlist, the origin guard and the body limit of the app apply as well.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from typing import Any, cast

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from rag.chain import last_answer
from rag.errors import AuthError, RagError
from rag.langchain import evidence_document
from rag.settings import Settings
from ui.gate import Gate, Way
from ui.guards import send_json_error
from ui.service import ChatService

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "A news archive. `search_articles` returns passages (exact article text, with source, "
    "title and character span); `ask` returns a short answer whose every claim carries an [n] "
    "marker resolved by `citations`. Quote the citations when you use an answer."
)
STDIO_WAIT = 300.0  # seconds a tool call waits for the models when the process just started


def _caller(ctx: Context) -> dict[str, Any]:
    """Who is asking, for the gate: the HTTP client's address and Authorization header, or
    "stdio"."""
    request = getattr(ctx.request_context, "request", None)
    client = getattr(request, "client", None)
    headers = getattr(request, "headers", None) or {}
    return {
        "client": str(client.host) if client is not None else "stdio",
        "authorization": headers.get("authorization"),
    }


def build_mcp(service: ChatService, wait: float = 0.0, way: Way = "api") -> MCPServer:
    """An MCPServer whose tools answer through `service`; tool calls wait up to `wait` seconds
    for the models to load (0 over HTTP, as /api: the client is told to retry). `way`: "api"
    over HTTP (the token), "local" over stdio."""
    mcp: MCPServer = MCPServer("news-archive", instructions=INSTRUCTIONS, version="1")

    @mcp.tool()
    async def search_articles(query: str, ctx: Context, k: int = 5) -> dict[str, Any]:
        """Passages of the news archive that match the query, best article first, each with its
        article (source, title) and exact character span (start, end) in it."""
        try:
            service.gate.check(way, **_caller(ctx))
            found = await run_in_threadpool(service.passages, query, max(1, min(k, 20)), wait)
        except RagError as exc:
            raise ToolError(service.describe(exc)) from exc
        docs = [evidence_document(e) for e in found]
        return {"passages": [{"text": d.page_content, **d.metadata} for d in docs]}

    @mcp.tool()
    async def ask(
        question: str,
        ctx: Context,
        date_from: str | None = None,
        date_to: str | None = None,
        outlet: list[str] | None = None,
        folder: list[str] | None = None,
    ) -> dict[str, Any]:
        """A short answer from the archive; every claim carries an [n] marker resolved by
        `citations` (article source, title, the exact quote and its span). `refused` is true
        when the articles do not answer the question. Optional filters: articles dated
        date_from..date_to (YYYY-MM-DD, inclusive; undated ones left out), from these outlets,
        in these folders (sub-folders included)."""
        given = {"date_from": date_from, "date_to": date_to, "outlet": outlet, "folder": folder}
        filters = {k: v for k, v in given.items() if v is not None} or None
        try:
            admission = service.admit(
                way, question=question, filters=filters, waits_for_model=wait > 0, **_caller(ctx)
            )
            events = service.stream(admission, wait=wait)
            answer = await run_in_threadpool(last_answer, events)
        except RagError as exc:
            raise ToolError(service.describe(exc)) from exc
        return answer.to_json_dict()

    return mcp


class McpGate:
    """ASGI app at /mcp: the bearer token (`Gate.allow`), then the SDK's streamable HTTP
    handler."""

    def __init__(self, handler: Any, gate: Gate) -> None:
        self.handler = handler
        self.gate = gate

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if scope["type"] == "http":
            try:
                self.gate.allow("api", authorization=authorization)
            except AuthError as exc:
                await send_json_error(send, 401, str(exc), {"WWW-Authenticate": "Bearer"})
                return
        await self.handler(scope, receive, send)


def mcp_http(service: ChatService) -> tuple[McpGate, Any]:
    """The /mcp ASGI app and the lifespan (the SDK's session manager) the web app must run."""
    mcp = build_mcp(service)
    # Origins are checked by the app's OriginGuard and the token here; the SDK's own Host
    # check would refuse every name but localhost, so it is left to them.
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        transport_security=security,
        max_request_body_size=service.settings.max_body_kb * 1024,
    )
    handler = cast(
        Route, app.routes[0]
    ).endpoint  # the ASGI handler itself: mounted at /mcp, beside the pages

    def lifespan(_: Any) -> AbstractAsyncContextManager[None]:
        return mcp.session_manager.run()

    return McpGate(handler, service.gate), lifespan


def run_stdio(settings: Settings) -> None:
    """`rag mcp`: serve the tools over stdio until the client closes it (logs on stderr)."""
    from ui.redaction import hide_secrets_in_output

    hide_secrets_in_output(settings.secret_values())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    service = ChatService(settings)
    service.start()  # the models load while the client initialises
    build_mcp(service, wait=STDIO_WAIT, way="local").run("stdio")
