"""One web server: the Gradio chat page ("/"), the widget ("/widget"), the REST API ("/api"),
the OpenAI-compatible API ("/v1") and the MCP endpoint ("/mcp").

Who may embed the pages and call the API from a browser is `Settings.allowed_origins` plus the
app's own origin and http://localhost:* / http://127.0.0.1:*. The browser enforces it: CSP
`frame-ancestors` on HTML pages and CORS on the API. Cross-origin writes from origins not on the
list are also refused here (403). An optional bearer token (`Settings.api_token`) guards /api/*.
"""

from __future__ import annotations

import logging
import warnings

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from rag.errors import RagError, SettingsError
from rag.settings import Settings
from ui.api import EXAMPLE, api_router, error_response, validation_error
from ui.guards import BodyLimit, OriginGuard, origin_patterns, origin_regex
from ui.mcp_server import mcp_http
from ui.openai_api import openai_router
from ui.redaction import hide_secrets_in_output
from ui.service import ChatService

log = logging.getLogger(__name__)


def create_app(settings: Settings, service: ChatService | None = None) -> FastAPI:
    """The FastAPI app: /api routes, /docs, and the Gradio chat page and widget mounted at "/"."""
    service = service or ChatService(settings)
    mcp_gate, mcp_lifespan = mcp_http(service)
    app = FastAPI(
        title="News archive Q&A",
        description="Ask questions about the news articles; every claim cites its passage.",
        version="1",
        docs_url="/docs",
        redoc_url=None,
        lifespan=mcp_lifespan,
    )
    _error_handlers(app, service)
    app.include_router(api_router(service))
    app.include_router(openai_router(service))
    # MCP over streamable HTTP; an ASGI app is a valid endpoint (Starlette calls it as is).
    app.add_route("/mcp", mcp_gate, include_in_schema=False)  # type: ignore[arg-type]

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": service.state}

    _guards(app, settings)
    _mount_page(app, service, settings)
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

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in message:  # not UTF-8, too deep, ...
            message = f"The request body could not be read as JSON. Send UTF-8 JSON like {EXAMPLE}."
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


def _guards(app: FastAPI, settings: Settings) -> None:
    """Body limit, origin guard and CORS, outermost last."""
    from fastapi.middleware.cors import CORSMiddleware

    patterns = origin_patterns(settings)
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


def _mount_page(app: FastAPI, service: ChatService, settings: Settings) -> None:
    """The Gradio chat page at "/" and the widget at "/widget"."""
    import gradio as gr

    from ui.page import CSS, build_blocks

    blocks = build_blocks(service)
    blocks.queue(max_size=settings.queue_limit, default_concurrency_limit=1)
    with warnings.catch_warnings():  # "SSR not supported with multi-page apps": not used
        warnings.filterwarnings("ignore", message="SSR mode is not supported")
        gr.mount_gradio_app(
            app,
            blocks,
            path="/",
            css=CSS,
            footer_links=["api"],
            run_history=False,
            ssr_mode=False,
            mcp_server=False,
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
    )
    if settings.api_token and len(settings.api_token.get_secret_value()) < 16:
        log.warning(
            "RAG_API_TOKEN is short and easy to guess. Use a long random one: "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    base = f"http://{settings.host}:{settings.port}"
    log.info("Chat page %s/ · widget %s/widget · API docs %s/docs", base, base, base)
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        raise SettingsError(
            f"The server could not start on {settings.host}:{settings.port} (the reason is "
            "logged above). Is the port in use? Choose another with --port or RAG_PORT."
        )
