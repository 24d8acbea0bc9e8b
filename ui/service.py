"""What every way into the server shares: the gate (`ui.gate`: access, rate, readiness, one
admission queue), the answer stream, the article lookup, and error messages with secrets
masked. No HTML in here.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rag.articles import get_article, list_articles
from rag.chain import last_answer
from rag.errors import ModelError, ModelLoadingError, RagError
from rag.questions import Query
from rag.schema import Answer, Event, Evidence
from rag.settings import Settings
from rag.store import Index
from ui.gate import Admission, Gate
from ui.loader import Loader
from ui.redaction import redact

log = logging.getLogger(__name__)
WAIT_TICK = 1.0  # seconds between updates of a waiting reader's place in the queue


@dataclass(frozen=True)
class Waiting:
    """A page-only event: the question waits for the model behind `ahead` others."""

    ahead: int


def failure_message(request_id: str) -> str:
    """What a user sees when something unexpected failed: no exception text, an id to quote."""
    return (
        f"Something went wrong on the server (request id {request_id}). Try again; if it "
        "keeps failing, give the id to the admin: the server log has the details."
    )


class ChatService:
    """Owns the QA pipeline for a server: readiness, admission, questions, articles."""

    def __init__(self, settings: Settings, loader: Loader | None = None) -> None:
        self.settings = settings
        self.loader = loader or Loader(settings)
        self.gate = Gate(settings, self.loader)
        # The one check every way in makes before a question may wait (`ui.gate.Gate.admit`).
        self.admit = self.gate.admit
        self.secrets = settings.secret_values()

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

    def ask(self, admission: Admission) -> Answer:
        """Answer one admitted question: the last event of `stream` (the Answer of `rag ask`)."""
        return last_answer(self.stream(admission))

    def stream(self, admission: Admission, wait: float = 0.0) -> Iterator[Event]:
        """The answer's events (see `rag.chain.QA.stream`); errors surface as RagError from
        the iterator.

        The pipeline runs in its own thread to the end even if the caller stops reading, so
        an abandoned stream (closed tab, dropped connection) never keeps the LLM; the
        admission's place is freed when it ends. `wait`: seconds to wait for the model to load.
        """
        return self._start(admission, wait, positions=False)

    def stream_with_places(self, admission: Admission, wait: float = 0.0) -> Iterator[Any]:
        """`stream`, with `Waiting` events that tell the reader their place in the queue
        while the question waits (for the page)."""
        return self._start(admission, wait, positions=True)

    def _start(self, admission: Admission, wait: float, positions: bool) -> Iterator[Any]:
        parts: queue.Queue[Event | BaseException | None] = queue.Queue()
        threading.Thread(
            target=self._produce, args=(admission, wait, parts), name="rag-answer", daemon=True
        ).start()
        return self._consume(admission, parts, positions)

    def _produce(self, admission: Admission, wait: float, parts: queue.Queue) -> None:
        try:
            for event in self.loader.qa(wait=wait).stream(admission.query):
                parts.put(event)
        except Exception as exc:
            parts.put(exc)
        finally:
            self.gate.release(admission)
            parts.put(None)

    def _consume(self, admission: Admission, parts: queue.Queue, positions: bool) -> Iterator:
        shown: int | None = None
        while True:
            try:
                part = parts.get(timeout=WAIT_TICK if positions else None)
            except queue.Empty:
                ahead = self.gate.ahead(admission)
                if ahead != shown:
                    shown = ahead
                    yield Waiting(ahead)
                continue
            if part is None:
                return
            if isinstance(part, RagError):
                raise part
            if isinstance(part, BaseException):
                log.error("Answering failed (request id %s)", admission.request_id, exc_info=part)
                raise ModelError(failure_message(admission.request_id)) from part
            positions = False  # the answer has begun
            yield part

    # ---- articles ------------------------------------------------------------------------

    def passages(self, text: str, k: int, wait: float = 0.0) -> list[Evidence]:
        """Up to `k` evidence passages for `text` (retrieval only: no LLM, no queue; callers
        pass `Gate.check` first), as the answer would see them; ModelLoadingError before the
        index is open."""
        query = Query.parse(text, None, self.settings.max_question_chars)
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
