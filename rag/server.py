"""One web server: the Gradio chat page ("/"), the widget ("/widget") and the REST API ("/api").

Who may embed the pages and call the API from a browser is `Settings.allowed_origins` plus the
app's own origin and http://localhost:* / http://127.0.0.1:*. The browser enforces it: CSP
`frame-ancestors` on HTML pages and CORS on the API. Cross-origin writes from origins not on the
list are also refused here (403). An optional bearer token (`Settings.api_token`) guards /api/*.
"""

from __future__ import annotations

import json
import logging
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
from rag.web_guards import (
    BEARER_HELP,
    BodyLimit,
    OriginGuard,
    bearer_ok,
    hide_secrets_in_output,
    origin_patterns,
    origin_regex,
)

log = logging.getLogger(__name__)


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


_EXAMPLE = '{"question": "...", "history": [["question", "answer"]]}'
_HISTORY_HELP = (
    "history must be a list of [question, answer] pairs of strings, "
    'or of {"role": ..., "content": ...} messages.'
)


def validation_error(errors: list[dict]) -> tuple[int, str]:
    """HTTP status and one readable message for FastAPI's request validation errors."""
    bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if bad_json is not None:
        reason = (bad_json.get("ctx") or {}).get("error", "syntax error")
        where = bad_json.get("loc", [])[1:2]
        at = f" at character {where[0]}" if where else ""
        return 400, f"The request body is not valid JSON ({reason}{at}). Send JSON like {_EXAMPLE}."
    problems: list[str] = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", [])[1:]]
        if not loc:
            text = (
                f"the body must be a JSON object like {_EXAMPLE} (Content-Type: application/json)"
            )
        elif loc[0] == "history":
            text = _HISTORY_HELP
        else:
            text = f"{'.'.join(loc)}: {e.get('msg')}"
        if text not in problems:
            problems.append(text)
    return 422, "Invalid request: " + "; ".join(problems)


def _error_response(exc: RagError, message: str) -> JSONResponse:
    status, headers = error_status(exc)
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _AuthError(Exception):
    pass


# ---- app ----------------------------------------------------------------------------------


def create_app(settings: Settings, service: ChatService | None = None) -> FastAPI:
    """The FastAPI app: /api routes, /docs, and the Gradio chat page and widget mounted at "/"."""
    import gradio as gr
    from fastapi.middleware.cors import CORSMiddleware
    from sse_starlette import EventSourceResponse
    from starlette.concurrency import iterate_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

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
        return _error_response(exc, service.describe(exc))

    @app.exception_handler(_AuthError)
    async def _auth_error(request: Request, exc: _AuthError) -> JSONResponse:
        return JSONResponse(
            {"error": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = validation_error(list(exc.errors()))
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in message:  # not UTF-8, too deep, ...
            message = (
                f"The request body could not be read as JSON. Send UTF-8 JSON like {_EXAMPLE}."
            )
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    def require_token(request: Request) -> None:
        if not bearer_ok(request.headers.get("authorization"), token):
            raise _AuthError(BEARER_HELP)

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
                yield {"event": "error", "data": json.dumps({"error": service.describe(exc)})}

        return EventSourceResponse(events())

    app.include_router(api)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": service.state}

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
