"""The one gate every way into the server passes before it may wait for the model.

`Gate.admit` checks, in this order: who is asking (`Gate.allow`: the bearer token on an "api"
way when `RAG_API_TOKEN` is set; the page's ticket on the "page" way), the question and
history (`rag.questions.Query`), the client's rate (`RAG_RATE_LIMIT_PER_MINUTE`), that the model
is ready (unless the caller waits for it), and room in ONE admission queue with ONE limit
(`RAG_QUEUE_LIMIT`), shared by the REST API, the SSE stream, the Gradio `/ask` endpoint, the
chat page and the widget. The `Admission` it returns holds a place in that queue until
`release` (`ChatService.stream` releases it when the answer ends); `ahead` says how many
admitted questions came before it and are not done yet.

A new way in (an OpenAI-compatible route, an MCP tool) calls `ChatService.admit` once, with
its way, the client's address and the request's Authorization header, then streams the answer
with `ChatService.stream(admission)`. See docs/reliability.md, "The gate".
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import threading
from dataclasses import dataclass, field
from typing import Literal

from rag.errors import AuthError, BusyError
from rag.questions import Query
from rag.settings import Settings
from ui.guards import BEARER_HELP, RateLimiter, bearer_ok
from ui.loader import Loader

# api: REST, SSE, /v1, MCP over HTTP, Gradio's /ask (the token); page: the chat page and the
# widget (the page's ticket); local: MCP over stdio, a process the caller started (nothing).
Way = Literal["api", "page", "local"]
PAGE_HEADER = "x-rag-page"  # the page's ticket, added to its requests by the page's script
PAGE_HELP = (
    "This endpoint belongs to the chat page and is not an API. Use POST /api/ask, or the "
    "Gradio endpoint /ask, with `Authorization: Bearer <token>`."
)


@dataclass(eq=False)
class Admission:
    """A checked question holding a place in the admission queue."""

    query: Query
    number: int  # arrival order
    way: Way
    client: str
    request_id: str = field(default_factory=lambda: secrets.token_hex(6))
    released: bool = False


def busy_message(waiting: int) -> str:
    """Why a question is refused when the admission queue is full."""
    questions = "1 question is" if waiting == 1 else f"{waiting} questions are"
    return f"{questions} already waiting for the model. Try again shortly."


def page_ticket(settings: Settings) -> str:
    """The value the page's script sends in `X-Rag-Page`. Not a secret: every reader's browser
    gets it with the page. It keeps the page's handlers from being an API (a script must load
    the page like a reader, and then gets a reader's rate and place in the queue); derived
    from the token when one is set, so it holds across restarts and cannot be computed
    without the token."""
    key = settings.api_token.get_secret_value() if settings.api_token else settings.host
    message = f"rag-page-ticket|{settings.port}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()[:32]


class Gate:
    """Access, rate, readiness and the one admission queue (see the module docstring)."""

    def __init__(self, settings: Settings, loader: Loader) -> None:
        self.settings = settings
        self.loader = loader
        self.limit = settings.queue_limit
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.token = settings.api_token.get_secret_value() if settings.api_token else ""
        self.ticket = page_ticket(settings)
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._admitted: dict[int, Admission] = {}  # in arrival order

    def allow(self, way: Way, authorization: str | None = None, ticket: str | None = None) -> None:
        """AuthError unless the caller may use `way` (see the module docstring)."""
        if way == "page":
            if not hmac.compare_digest((ticket or "").encode(), self.ticket.encode()):
                raise AuthError(PAGE_HELP)
        elif way == "api" and not bearer_ok(authorization, self.token):
            raise AuthError(BEARER_HELP)

    def check(
        self,
        way: Way,
        *,
        client: str,
        authorization: str | None = None,
        ticket: str | None = None,
    ) -> None:
        """Access and rate for a call that searches the index but does not wait for the model
        (no place in the queue): AuthError or RateLimitError."""
        self.allow(way, authorization, ticket)
        self.limiter.check(client)

    def admit(
        self,
        way: Way,
        *,
        client: str,
        question: object,
        history: object = None,
        filters: object = None,
        authorization: str | None = None,
        ticket: str | None = None,
        waits_for_model: bool = False,
        request_id: str | None = None,
    ) -> Admission:
        """The one check before a question may wait for the model; raises AuthError,
        QuestionError, RateLimitError, ModelLoadingError (or why loading failed) or BusyError."""
        self.allow(way, authorization, ticket)
        query = Query.parse(question, history, self.settings.max_question_chars, filters)
        self.limiter.check(client)
        if not waits_for_model:
            self.loader.qa()  # not ready: say so now, before taking a place
        with self._lock:
            if len(self._admitted) >= self.limit:
                raise BusyError(busy_message(len(self._admitted)))
            admission = Admission(query, next(self._numbers), way, client)
            admission.request_id = request_id or admission.request_id
            self._admitted[admission.number] = admission
        return admission

    def release(self, admission: Admission) -> None:
        """Free the admission's place (again is harmless)."""
        with self._lock:
            admission.released = True
            self._admitted.pop(admission.number, None)

    def ahead(self, admission: Admission) -> int:
        """How many questions admitted before this one are not done yet."""
        with self._lock:
            return sum(1 for n in self._admitted if n < admission.number)

    def has_room(self) -> bool:
        """Whether a question could be admitted now (for an early refusal at the door)."""
        with self._lock:
            return len(self._admitted) < self.limit

    @property
    def waiting(self) -> int:
        """Questions admitted and not done: waiting for the model or being answered."""
        with self._lock:
            return len(self._admitted)
