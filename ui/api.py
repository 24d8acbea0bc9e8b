"""The REST API under /api: status, a blocking answer, a streamed (SSE) answer, and the
indexed articles.

Errors are JSON `{"error": message}` with the HTTP status of `error_status`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rag.errors import (
    AuthError,
    BusyError,
    IndexMismatchError,
    IndexMissingError,
    ModelLoadingError,
    QuestionError,
    RagError,
    RateLimitError,
)
from rag.questions import FILTER_HELP, HISTORY_HELP
from rag.schema import Answer, Retry, Sentence, Token
from ui.gate import Admission
from ui.guards import request_id
from ui.service import ChatService

EXAMPLE = '{"question": "...", "history": [["question", "answer"]]}'


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
    filters: dict[str, Any] | None = Field(
        None,
        description='Only these articles: {"date_from": "YYYY-MM-DD", "date_to": "YYYY-MM-DD", '
        '"outlet": name or [names], "folder": path or [paths]} (each key optional; dates '
        "inclusive, undated articles left out by a date range; a folder includes its "
        "sub-folders).",
        examples=[{"date_from": "2025-03-01", "folder": "bbc/business"}],
    )
    drafts: bool = Field(
        False,
        description="/api/ask/stream only: also send the model's unchecked tokens as `token` "
        "events. Off by default: a client then only ever receives checked sentences.",
    )

    def raw_history(self) -> list[Any]:
        """The history as sent, for `rag.questions.clean_history` to check."""
        return [m.model_dump() if isinstance(m, Message) else list(m) for m in self.history]


# ---- errors -------------------------------------------------------------------------------


def error_status(exc: RagError) -> tuple[int, dict[str, str]]:
    """HTTP status and headers for a RagError."""
    if isinstance(exc, AuthError):
        return 401, {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, QuestionError):
        return 422, {}
    if isinstance(exc, RateLimitError):
        return 429, {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, (ModelLoadingError, BusyError)):
        return 503, {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, (IndexMissingError, IndexMismatchError)):
        return 503, {"Retry-After": "30"}
    return 503, {}  # ModelError, SettingsError, ...: the server cannot answer for now


def error_response(exc: RagError, message: str) -> JSONResponse:
    """`{"error": message}` with the status and headers that fit `exc`."""
    status, headers = error_status(exc)
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def validation_error(errors: list[dict[str, Any]]) -> tuple[int, str]:
    """HTTP status and one readable message for FastAPI's request validation errors."""
    bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if bad_json is not None:
        reason = (bad_json.get("ctx") or {}).get("error", "syntax error")
        where = bad_json.get("loc", [])[1:2]
        at = f" at character {where[0]}" if where else ""
        return 400, f"The request body is not valid JSON ({reason}{at}). Send JSON like {EXAMPLE}."
    problems: list[str] = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", [])[1:]]
        if not loc:
            text = f"the body must be a JSON object like {EXAMPLE} (Content-Type: application/json)"
        elif loc[0] == "history":
            text = HISTORY_HELP
        elif loc[0] == "filters":
            text = FILTER_HELP
        else:
            text = f"{'.'.join(loc)}: {e.get('msg')}"
        if text not in problems:
            problems.append(text)
    return 422, "Invalid request: " + "; ".join(problems)


# ---- routes -------------------------------------------------------------------------------

_ASK_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong bearer token"},
    422: {"description": 'Bad question or history: {"error": message}'},
    429: {"description": "Rate limit reached (Retry-After)"},
    503: {"description": "Model loading, index missing or queue full (Retry-After)"},
}


def client_of(request: Request) -> str:
    """The client's address (the forwarded one behind a trusted proxy), for the rate limit."""
    return request.client.host if request.client else "unknown"


def api_router(service: ChatService) -> APIRouter:
    """The /api routes, all behind the bearer token when one is set; questions pass the gate."""

    def require_token(request: Request) -> None:
        service.gate.allow("api", authorization=request.headers.get("authorization"))

    api = APIRouter(prefix="/api", dependencies=[Depends(require_token)], tags=["api"])

    def admit(body: AskRequest, request: Request) -> Admission:
        return service.admit(
            "api",
            client=client_of(request),
            question=body.question,
            history=body.raw_history(),
            filters=body.filters,
            authorization=request.headers.get("authorization"),
            request_id=request_id(request.scope),
        )

    @api.get("/status")
    def status() -> dict[str, str]:
        """Whether the model and index are loaded: status is loading, ready or error."""
        return service.status()

    @api.get("/articles")
    def articles() -> list[dict[str, Any]]:
        """Every indexed article: id (its source path), title, date (null: undated), outlet,
        author, url, lang, chars kept, chunks, and the extractor that produced its text."""
        return service.articles()

    @api.get("/articles/{article_id:path}", responses={404: {"description": "No such article"}})
    def article(article_id: str) -> Any:
        """One article's metadata and extracted text ("text"); the id is its source path,
        URL-encoded (as in `citations[].source`)."""
        found = service.article_record(article_id)
        if found is None:
            message = f"No indexed article has the id {article_id!r}. GET /api/articles lists them."
            return JSONResponse({"error": message}, status_code=404)
        return found

    @api.post("/ask", response_model=Answer, responses=_ASK_RESPONSES)
    def ask(body: AskRequest, request: Request) -> dict[str, Any]:
        """Answer a question; the same JSON object as `rag ask --json`."""
        return service.ask(admit(body, request)).to_json_dict()

    @api.post(
        "/ask/stream", response_model=None, responses={200: {"content": {"text/event-stream": {}}}}
    )
    async def ask_stream(body: AskRequest, request: Request) -> Any:
        """Server-sent events: a `sentence` event for each answer sentence once it has passed
        the check ({"text", "citations", "check"}), then one `answer` event (the same object
        as /api/ask). With "drafts": true, also `token` events (unchecked) and `retry`."""
        from sse_starlette import EventSourceResponse

        events = service.stream(admit(body, request))  # raises before the stream starts
        return EventSourceResponse(sse_events(service, events, drafts=body.drafts))

    return api


def sentence_json(sentence: Sentence) -> dict[str, Any]:
    """A checked sentence as sent to clients: its text with [n] markers, its citations and
    the check's verdict."""
    return {
        "text": sentence.text,
        "citations": [c.model_dump() for c in sentence.citations],
        "check": sentence.check.model_dump(),
    }


async def sse_events(
    service: ChatService, events: Any, drafts: bool = False
) -> AsyncIterator[dict[str, str]]:
    """An answer's events as SSE: `sentence` (checked), `answer`, or `error`; with `drafts`
    also `token` (unchecked) and `retry` (the tokens so far are void)."""
    from starlette.concurrency import iterate_in_threadpool

    try:
        async for event in iterate_in_threadpool(events):
            if isinstance(event, Answer):
                yield {"event": "answer", "data": json.dumps(event.to_json_dict())}
            elif isinstance(event, Sentence):
                yield {"event": "sentence", "data": json.dumps(sentence_json(event))}
            elif drafts and isinstance(event, Retry):
                yield {"event": "retry", "data": "{}"}
            elif drafts and isinstance(event, Token) and event.text:
                yield {"event": "token", "data": json.dumps({"text": event.text})}
    except RagError as exc:
        yield {"event": "error", "data": json.dumps({"error": service.describe(exc)})}
