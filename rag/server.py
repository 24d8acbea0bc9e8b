"""One web server: the Gradio chat page ("/"), the widget ("/widget") and the REST API ("/api").

Who may embed the pages and call the API from a browser is `Settings.allowed_origins` plus the
app's own origin and http://localhost:* / http://127.0.0.1:*. The browser enforces it: CSP
`frame-ancestors` on HTML pages and CORS on the API. Cross-origin writes from origins not on the
list are also refused here (403). An optional bearer token (`Settings.api_token`) guards /api/*.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import warnings
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rag.chain import RETRY_MARK
from rag.errors import (
    IndexMismatchError,
    IndexMissingError,
    QuestionError,
    RagError,
    SettingsError,
)
from rag.schema import Answer
from rag.service import (
    BusyError,
    ChatService,
    ModelLoadingError,
    RateLimitError,
    normalize_history,
)
from rag.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*")
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:.]+\])"
    r"(?::(?P<port>\d{1,5}|\*))?"
)
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class Message(BaseModel):
    """One chat message, as many chat APIs send history."""

    role: Literal["user", "assistant", "system"]
    content: str


class AskRequest(BaseModel):
    """A question with the conversation so far (oldest first)."""

    question: str = Field(examples=["How many Indian soldiers were killed in the bombing?"])
    history: list[tuple[str, str] | Message] = Field(
        default_factory=list,
        description='[[question, answer], ...] pairs, or [{"role": ..., "content": ...}] messages.',
    )

    def pairs(self) -> list[tuple[str, str]]:
        """The history as (question, answer) pairs."""
        if self.history and all(isinstance(m, Message) for m in self.history):
            return normalize_history([m.model_dump() for m in self.history])
        if any(isinstance(m, Message) for m in self.history):
            raise QuestionError("history must be all pairs or all messages, not a mix.")
        return normalize_history([list(m) for m in self.history])


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
                out.append((b"x-content-type-options", b"nosniff"))
                out.append((b"referrer-policy", b"same-origin"))
                message = {**message, "headers": out}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ---- errors -------------------------------------------------------------------------------


def error_status(exc: RagError) -> tuple[int, dict[str, str]]:
    """HTTP status and headers for a RagError."""
    if isinstance(exc, QuestionError):
        return 422, {}
    if isinstance(exc, RateLimitError):
        return 429, {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, (ModelLoadingError, BusyError)):
        return 503, {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, (IndexMissingError, IndexMismatchError)):
        return 503, {"Retry-After": "30"}
    return 503, {}  # ModelError, SettingsError, ...: the server cannot answer for now


def _error_response(exc: RagError) -> JSONResponse:
    status, headers = error_status(exc)
    return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)


class _AuthError(Exception):
    pass


# ---- app ----------------------------------------------------------------------------------


def create_app(settings: Settings, service: ChatService | None = None) -> FastAPI:
    """The FastAPI app: /api routes, /docs, and the Gradio chat page and widget mounted at "/"."""
    import gradio as gr
    from fastapi.middleware.cors import CORSMiddleware
    from sse_starlette import EventSourceResponse
    from starlette.concurrency import iterate_in_threadpool

    from ui.app import CSS, build_blocks

    service = service or ChatService(settings)
    service.start()
    patterns = origin_patterns(settings)
    token = settings.api_token.get_secret_value() if settings.api_token else ""

    app = FastAPI(
        title="News archive Q&A",
        description="Ask questions about the news articles; every claim cites its passage.",
        version="1",
        docs_url="/docs",
        redoc_url=None,
    )

    @app.exception_handler(RagError)
    async def _rag_error(request: Request, exc: RagError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(_AuthError)
    async def _auth_error(request: Request, exc: _AuthError) -> JSONResponse:
        return JSONResponse(
            {"error": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'body'}: {e.get('msg')}"
            for e in exc.errors()
        )
        return JSONResponse({"error": f"Invalid request: {problems}"}, status_code=422)

    def require_token(request: Request) -> None:
        if not token:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            raise _AuthError("Missing or wrong API token: send `Authorization: Bearer <token>`.")

    api = APIRouter(prefix="/api", dependencies=[Depends(require_token)], tags=["api"])

    @api.get("/status")
    def status() -> dict[str, str]:
        """Whether the model and index are loaded: status is loading, ready or error."""
        return service.status()

    @api.post(
        "/ask",
        response_model=Answer,
        responses={
            401: {"description": "Missing or wrong bearer token"},
            422: {"description": 'Bad question or history: {"error": message}'},
            429: {"description": "Rate limit reached (Retry-After)"},
            503: {"description": "Model loading, index missing or queue full (Retry-After)"},
        },
    )
    def ask(body: AskRequest, request: Request) -> dict:
        """Answer a question; the same JSON object as `rag ask --json`."""
        history = body.pairs()
        service.check_question(body.question)
        service.check_rate(request.client.host if request.client else "unknown")
        return service.ask(body.question, history).to_json_dict()

    @api.post(
        "/ask/stream", response_model=None, responses={200: {"content": {"text/event-stream": {}}}}
    )
    async def ask_stream(body: AskRequest, request: Request):
        """Server-sent events: `token` events ({"text": ...}), then one `answer` event."""
        history = body.pairs()
        service.check_question(body.question)
        service.check_rate(request.client.host if request.client else "unknown")
        parts = service.stream(body.question, history)  # raises before the stream starts

        async def events() -> AsyncIterator[dict]:
            try:
                async for part in iterate_in_threadpool(parts):
                    if isinstance(part, Answer):
                        yield {"event": "answer", "data": json.dumps(part.to_json_dict())}
                    elif part == RETRY_MARK:  # tokens so far are void; a second try follows
                        yield {"event": "retry", "data": "{}"}
                    elif part:
                        yield {"event": "token", "data": json.dumps({"text": part})}
            except RagError as exc:
                yield {"event": "error", "data": json.dumps({"error": str(exc)})}

        return EventSourceResponse(events())

    app.include_router(api)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": service.state}

    app.add_middleware(OriginGuard, patterns=patterns)
    app.add_middleware(
        CORSMiddleware,
        allow_origin_regex="|".join(f"(?:{origin_regex(p)})" for p in patterns),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        allow_credentials=False,
        max_age=600,
    )

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
    return app


def serve(settings: Settings) -> None:
    """Run the server with uvicorn on settings.host:settings.port until interrupted."""
    import uvicorn

    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt)
    app = create_app(settings)
    base = f"http://{settings.host}:{settings.port}"
    log.info("Chat page %s/ · widget %s/widget · API docs %s/docs", base, base, base)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=3,
    )
