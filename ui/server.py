"""One web server: the Gradio chat page ("/"), the widget ("/widget"), the REST API ("/api"),
the OpenAI-compatible API ("/v1") and the MCP endpoint ("/mcp").

Every request passes, outermost first: the Host allowlist (`HostGuard`, `RAG_ALLOWED_HOSTS`),
a request id, CORS, the origin guard (CSP `frame-ancestors`, X-Frame-Options, 403 for
cross-origin writes from origins not allowed), the body limit, and the door to Gradio's routes
(`ui.gradio_routes`: only the routes the page needs, each event call checked by the gate).
Every question then passes the gate (`ui.gate`): token or page ticket, rate, readiness, one
admission queue. Below HTTP, `ui.connections` bounds slow and numerous connections.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from rag.errors import RagError, SettingsError
from rag.settings import Settings
from ui.api import EXAMPLE, api_router, error_response, validation_error
from ui.apidocs import add_docs
from ui.guards import (
    BodyLimit,
    HostGuard,
    OriginGuard,
    RequestId,
    allowed_hosts,
    origin_patterns,
    origin_regex,
    request_id,
)
from ui.mcp_server import mcp_http
from ui.openai_api import openai_router
from ui.redaction import hide_secrets_in_output
from ui.service import ChatService, failure_message

log = logging.getLogger(__name__)


def create_app(settings: Settings, service: ChatService | None = None) -> FastAPI:
    """The FastAPI app: /api routes, /docs, and the Gradio chat page and widget mounted at "/"."""
    from ui.page import build_blocks

    service = service or ChatService(settings)
    mcp_gate, mcp_lifespan = mcp_http(service)
    app = FastAPI(
        title="News archive Q&A",
        description="Ask questions about the news articles; every claim cites its passage. "
        "Titles, quotes and answers are plain text from the articles and the model: escape "
        "them before putting them into HTML.",
        version="1",
        docs_url=None,  # ui.apidocs serves /docs and /redoc from local files
        redoc_url=None,
        lifespan=mcp_lifespan,
    )
    _error_handlers(app, service)
    add_docs(app)
    app.include_router(api_router(service))
    app.include_router(openai_router(service))
    # MCP over streamable HTTP; an ASGI app is a valid endpoint (Starlette calls it as is).
    app.add_route("/mcp", mcp_gate, include_in_schema=False)  # type: ignore[arg-type]

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": service.state}

    blocks = build_blocks(service)
    _guards(app, settings, service, blocks)
    _mount_page(app, blocks, settings)
    service.start()  # the models load in the background; the server answers meanwhile
    return app


def _error_handlers(app: FastAPI, service: ChatService) -> None:
    """Every error as JSON `{"error": message}`, secrets masked."""
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(RagError)
    async def _rag_error(request: Request, exc: RagError) -> JSONResponse:
        return error_response(exc, service.describe(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = validation_error(list(exc.errors()))
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id(request.scope)
        log.error("Unexpected error (request id %s) on %s", rid, request.url.path, exc_info=exc)
        return JSONResponse({"error": failure_message(rid), "request_id": rid}, status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in message:  # not UTF-8, too deep, ...
            message = f"The request body could not be read as JSON. Send UTF-8 JSON like {EXAMPLE}."
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


def _guards(app: FastAPI, settings: Settings, service: ChatService, blocks: Any) -> None:
    """The ASGI guards, innermost first (Starlette runs the last added first)."""
    from fastapi.middleware.cors import CORSMiddleware

    from ui.gradio_routes import GradioRoutes
    from ui.page import LLM_GROUP

    patterns = origin_patterns(settings)
    app.add_middleware(
        GradioRoutes,
        blocks=blocks,
        gate=service.gate,
        llm_group=LLM_GROUP,
        routes=app.router.routes,
    )
    app.add_middleware(BodyLimit, max_kb=settings.max_body_kb)
    app.add_middleware(OriginGuard, patterns=patterns)
    app.add_middleware(
        CORSMiddleware,
        allow_origin_regex="|".join(f"(?:{origin_regex(p)})" for p in patterns),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        allow_credentials=False,
        max_age=600,
    )
    app.add_middleware(RequestId)
    app.add_middleware(HostGuard, hosts=allowed_hosts(settings))


def _mount_page(app: FastAPI, blocks: Any, settings: Settings) -> None:
    """The Gradio chat page at "/" and the widget at "/widget"."""
    import gradio as gr

    from ui.page import CSS, HEAD, widget_css

    # Gradio's queue hands each question to the gate at once (the LLM group has no Gradio
    # limit); its size is only a backstop against a flood of joins. api_open=False: queued
    # handlers only through the queue.
    blocks.queue(max_size=settings.max_connections, default_concurrency_limit=1, api_open=False)
    with warnings.catch_warnings():  # "SSR not supported with multi-page apps": not used
        warnings.filterwarnings("ignore", message="SSR mode is not supported")
        gr.mount_gradio_app(
            app,
            blocks,
            path="/",
            css=CSS + widget_css(settings),
            head=HEAD,
            footer_links=["api"],
            run_history=False,
            ssr_mode=False,
            mcp_server=False,
            show_error=False,  # only our gr.Error messages reach the page, never exception text
            server_name=settings.host,
            server_port=settings.port,
        )


def serve(settings: Settings) -> None:
    """Run the server with uvicorn on settings.host:settings.port until interrupted."""
    import uvicorn

    hide_secrets_in_output(settings.secret_values())  # before any log handler takes the streams
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt)
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each index build at DEBUG
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=3,
        # X-Forwarded-For is a client's say-so unless it comes from a known proxy.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
        **connection_limits(settings),
    )
    _warn_about(settings)
    base = f"http://{settings.host}:{settings.port}"
    log.info("Chat page %s/ · widget %s/widget · API docs %s/docs", base, base, base)
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        raise SettingsError(
            f"The server could not start on {settings.host}:{settings.port} (the reason is "
            "logged above). Is the port in use? Choose another with --port or RAG_PORT."
        )


def connection_limits(settings: Settings) -> dict[str, Any]:
    """uvicorn settings that bound connections: each request must arrive within
    `request_timeout` (`ui.connections`), at most `max_connections` at once and
    `max_connections_per_client` per address, idle keep-alive connections closed after 5 s,
    headers over 16 KiB refused (h11), no WebSockets (nothing uses them)."""
    from ui.connections import timed_protocol

    protocol = timed_protocol(
        settings.request_timeout, settings.max_connections_per_client, settings.trusted_proxies
    )
    return {
        "http": protocol,
        "ws": "none",
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": 5,
        "h11_max_incomplete_event_size": 16 * 1024,
    }


def _warn_about(settings: Settings) -> None:
    """Log what makes the server easier to attack than it needs to be."""
    import resource

    if settings.api_token and len(settings.api_token.get_secret_value()) < 16:
        log.warning(
            "RAG_API_TOKEN is short and easy to guess. Use a long random one: "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    files, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if files != resource.RLIM_INFINITY and settings.max_connections > files - 100:
        log.warning(
            "RAG_MAX_CONNECTIONS (%d) is near the process's limit of %d open files; lower "
            "it, or raise the limit (ulimit -n).",
            settings.max_connections,
            files,
        )
    if settings.host in ("0.0.0.0", "::") and not settings.allowed_hosts:
        log.warning(
            "Listening on all addresses, but only localhost names are accepted in the Host "
            'header: set RAG_ALLOWED_HOSTS (e.g. ["rag.intranet.example"]) to the names '
            "clients use."
        )
