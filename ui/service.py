"""What every way into the server shares: the gate (rate, readiness, one admission queue), the
answer stream, the article lookup, and error messages with secrets masked. No HTML in here.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

from rag.articles import get_article, list_articles
from rag.chain import QA, last_answer
from rag.errors import BusyError, ModelError, ModelLoadingError, RagError
from rag.questions import Query
from rag.schema import Answer, Event, Evidence
from rag.settings import Settings
from rag.store import Index
from ui.guards import RateLimiter
from ui.loader import Loader
from ui.redaction import redact

log = logging.getLogger(__name__)


class ChatService:
    """Owns the QA pipeline for a server: readiness, admission, questions, articles."""

    def __init__(self, settings: Settings, loader: Loader | None = None) -> None:
        self.settings = settings
        self.loader = loader or Loader(settings)
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.secrets = settings.secret_values()
        self.api_token = settings.api_token.get_secret_value() if settings.api_token else ""
        self._lock = threading.Lock()
        self._waiting = 0  # questions waiting for or using the model

    # ---- readiness -----------------------------------------------------------------------

    def start(self) -> None:
        """Start loading the models and the index in the background; returns at once."""
        self.loader.start()

    @property
    def state(self) -> str:
        """One of "loading", "ready", "error"."""
        return self.loader.state

    def describe(self, exc: BaseException | None) -> str:
        """An error's message for users, with any secret setting's value masked."""
        return redact(str(exc), self.secrets)

    def status(self) -> dict[str, str]:
        """Machine-readable status: {"status": ..., "message": ...}."""
        state = self.state
        message = {"loading": "Model loading…", "ready": "Ready."}.get(state)
        return {"status": state, "message": message or self.describe(self.loader.error)}

    # ---- questions -----------------------------------------------------------------------

    def query(self, question: object, history: object = None) -> Query:
        """The checked question and history, or QuestionError (before waiting for anything)."""
        return Query.parse(question, history, self.settings.max_question_chars)

    def check_rate(self, client: str) -> None:
        """Raise RateLimitError if `client` asked too many questions in the last minute."""
        self.limiter.check(client)

    def ask(self, query: Query, admitted: bool = False) -> Answer:
        """Answer one question: the last event of `stream` (the same Answer as `rag ask`)."""
        return last_answer(self.stream(query, admitted=admitted))

    def stream(self, query: Query, wait: float = 0.0, admitted: bool = False) -> Iterator[Event]:
        """The answer's events (see `rag.chain.QA.stream`); errors surface as RagError from
        the iterator.

        Readiness and queue room are checked now, before the first event is asked for
        (BusyError when `queue_limit` questions already wait, unless `admitted` by a queue
        that bounds itself). The pipeline runs in its own thread to the end even if the caller
        stops reading, so an abandoned stream (closed tab, dropped connection) never keeps
        the LLM.
        """
        qa = self.loader.qa(wait=wait)
        self._reserve(admitted)
        parts: queue.Queue[Event | BaseException | None] = queue.Queue()
        threading.Thread(
            target=self._produce, args=(qa, query, parts), name="rag-answer", daemon=True
        ).start()
        return _consume(parts)

    def _produce(self, qa: QA, query: Query, parts: queue.Queue) -> None:
        try:
            for event in qa.stream(query):
                parts.put(event)
        except Exception as exc:
            parts.put(exc)
        finally:
            self._release()
            parts.put(None)

    def _reserve(self, admitted: bool = False) -> None:
        with self._lock:
            if not admitted and self._waiting >= self.settings.queue_limit:
                raise BusyError(
                    f"{self._waiting} questions are already waiting for the model. "
                    "Try again shortly."
                )
            self._waiting += 1

    def _release(self) -> None:
        with self._lock:
            self._waiting -= 1

    # ---- articles ------------------------------------------------------------------------

    def passages(self, text: str, k: int, wait: float = 0.0) -> list[Evidence]:
        """Up to `k` evidence passages for `text` (retrieval only: no LLM, no queue), as the
        answer would see them; ModelLoadingError before the index is open."""
        query = self.query(text)
        return self.loader.qa(wait=wait).retriever.retrieve(query.question, k)  # type: ignore[attr-defined]

    def _index(self) -> Index | None:
        """The open index; ModelLoadingError before it is open."""
        if self.state != "ready":
            raise ModelLoadingError("The articles are still loading.")
        # The retriever's index is reopened when another process writes the store.
        index = getattr(self.loader.qa().retriever, "index", None)
        return index if isinstance(index, Index) else None

    def article(self, source: str) -> tuple[str, str] | None:
        """(title, full text) of an ingested article, or None; ModelLoadingError before the
        index is open."""
        index = self._index()
        return index.article(source) if index is not None else None

    def articles(self) -> list[dict[str, Any]]:
        """Every indexed article's summary (`rag.articles.summary`)."""
        index = self._index()
        return list_articles(index) if index is not None else []

    def article_record(self, source: str) -> dict[str, Any] | None:
        """One article's summary and extracted text, or None."""
        index = self._index()
        return get_article(index, source) if index is not None else None


def _consume(parts: queue.Queue) -> Iterator[Event]:
    while (part := parts.get()) is not None:
        if isinstance(part, RagError):
            raise part
        if isinstance(part, BaseException):
            log.error("Answering failed", exc_info=part)
            raise ModelError(f"Answering failed: {part}") from part
        yield part
