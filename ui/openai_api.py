"""An OpenAI-compatible chat API under /v1, so that any OpenAI client can use the archive as a
"model": `POST /v1/chat/completions` (streamed or not) and `GET /v1/models`.

The answer is the verified one, as `/api/ask` gives it: its text carries the [n] markers, a
"Sources:" list is appended for clients that only show text, and the citations travel in the
extra field `citations` (the `rag.schema.Citation` objects of the JSON contract); the whole
answer object is in `rag`. `filters` (extra field) limits the articles as in /api/ask. The same gate as /api: bearer token, rate per client, the one
admission queue (`ChatService.admit`), the body limit and origin guard of the app.

Streaming sends only checked text. The model's draft is verified before any of it is sent (a
sentence the check drops, or a draft the model retracts with a `Retry`, must not reach a
client that cannot take text back), so the stream opens at once with the assistant's role and
keep-alive comments, then carries the verified answer, its sources, and a last chunk with
`finish_reason: "stop"` and the `citations`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from rag.chain import last_answer
from rag.citations import format_answer
from rag.errors import QuestionError, RagError
from rag.schema import Answer, Event
from ui.api import client_of, error_status
from ui.guards import request_id
from ui.service import ChatService

MODEL_ID = "news-archive"
SOURCES = "\n\nSources:"  # where the text-only sources list starts in an answer's content


class ChatMessage(BaseModel):
    """One message of an OpenAI chat request; content as text or as a list of parts."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text (text parts joined; images and the like ignored)."""
        if isinstance(self.content, list):
            return " ".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """The fields of an OpenAI chat completion request that matter here (others are ignored:
    the archive's own settings choose the model and its parameters)."""

    model_config = ConfigDict(extra="allow")

    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    filters: dict[str, Any] | None = Field(
        None,
        description="Only these articles, as in POST /api/ask (an OpenAI client sends it in "
        '`extra_body={"filters": {...}}`).',
    )


def to_question(body: ChatRequest) -> tuple[str, list[dict[str, str]]]:
    """The last user message as the question, the user/assistant turns before it as history
    (system messages ignored; our appended sources list left out of the history)."""
    turns = [m for m in body.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user":
        raise QuestionError("The last message must be the user's question (role: user).")
    history = [
        {"role": m.role, "content": m.text().split(SOURCES)[0]} for m in turns[:-1] if m.text()
    ]
    return turns[-1].text(), history


def answer_content(answer: Answer) -> str:
    """The answer's text with its [n] markers, then the sources (or closest passages) list."""
    return format_answer(answer).replace("\n\nSources:", SOURCES, 1)


def openai_error(exc: RagError, message: str) -> JSONResponse:
    """An error in OpenAI's shape, `{"error": {"message", "type", "code"}}`, with our status."""
    status, headers = error_status(exc)
    kind = "invalid_request_error" if status in (401, 422) else "server_error"
    if status == 429:
        kind = "rate_limit_error"
    body = {"error": {"message": message, "type": kind, "code": type(exc).__name__}}
    return JSONResponse(body, status_code=status, headers=headers)


def _completion(answer: Answer, completion_id: str, created: int) -> dict[str, Any]:
    message = {"role": "assistant", "content": answer_content(answer)}
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": MODEL_ID,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "citations": [c.model_dump() for c in answer.citations],
        "rag": answer.to_json_dict(),
    }


def _chunk(completion_id: str, created: int, delta: dict[str, Any], **extra: Any) -> str:
    finish = extra.pop("finish_reason", None)
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    chunk = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL_ID,
        "choices": [choice],
        **extra,
    }
    return json.dumps(chunk)


async def completion_chunks(
    service: ChatService, events: Iterator[Event], completion_id: str, created: int
) -> AsyncIterator[dict[str, str]]:
    """The SSE data of a streamed completion: the role at once, the verified answer in pieces
    when it is ready, a last chunk with the citations, then `[DONE]`."""
    from starlette.concurrency import run_in_threadpool

    yield {"data": _chunk(completion_id, created, {"role": "assistant", "content": ""})}
    try:
        answer = await run_in_threadpool(last_answer, events)  # tokens are drafts: not sent
    except RagError as exc:
        error = {"message": service.describe(exc), "type": "server_error"}
        yield {"data": json.dumps({"error": error})}
        return
    for piece in _pieces(answer_content(answer)):
        yield {"data": _chunk(completion_id, created, {"content": piece})}
    citations = [c.model_dump() for c in answer.citations]
    last = _chunk(
        completion_id,
        created,
        {},
        finish_reason="stop",
        citations=citations,
        rag=answer.to_json_dict(),
    )
    yield {"data": last}
    yield {"data": "[DONE]"}


def _pieces(text: str, size: int = 48) -> list[str]:
    """The text cut after spaces into pieces of about `size` characters, as a stream shows it."""
    pieces, start = [], 0
    while start < len(text):
        cut = text.find(" ", start + size)
        end = len(text) if cut < 0 else cut + 1
        pieces.append(text[start:end])
        start = end
    return pieces


def openai_router(service: ChatService) -> APIRouter:
    """The /v1 routes, behind the same bearer token, rate limit and queue as /api."""
    v1 = APIRouter(prefix="/v1", tags=["openai"])

    @v1.get("/models")
    def models(request: Request) -> Any:
        """The one "model" here: the news archive, answering with citations."""
        try:
            service.gate.allow("api", authorization=request.headers.get("authorization"))
        except RagError as exc:
            return openai_error(exc, service.describe(exc))
        model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "rag"}
        return {"object": "list", "data": [model]}

    @v1.post("/chat/completions", response_model=None)
    async def chat_completions(body: ChatRequest, request: Request) -> Any:
        """An OpenAI chat completion: the verified answer, with `citations` (extra field)."""
        from sse_starlette import EventSourceResponse
        from starlette.concurrency import run_in_threadpool

        completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        try:
            question, history = to_question(body)
            admission = service.admit(  # token, question, rate, readiness, room: before streaming
                "api",
                client=client_of(request),
                question=question,
                history=history,
                filters=body.filters,
                authorization=request.headers.get("authorization"),
                request_id=request_id(request.scope),
            )
            events = service.stream(admission)
            if not body.stream:
                answer = await run_in_threadpool(last_answer, events)
                return _completion(answer, completion_id, created)
        except RagError as exc:
            return openai_error(exc, service.describe(exc))
        chunks = completion_chunks(service, events, completion_id, created)
        return EventSourceResponse(chunks, ping=5)

    return v1
