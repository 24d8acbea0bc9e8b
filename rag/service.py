"""Chat logic shared by the web page, the widget and the REST API; no web framework in here.

`ChatService` loads the QA pipeline in a background thread (so the server answers at once and
says "model loading…"), runs questions, and renders answers, sources and articles as HTML in
which every piece of article text and model output is escaped.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from rag.errors import (
    IndexMismatchError,
    IndexMissingError,
    ModelError,
    QuestionError,
    RagError,
    StoreUnavailableError,
)
from rag.render import empty_html, escape_markdown, render_article
from rag.schema import Answer
from rag.settings import Settings
from rag.web_guards import redact

log = logging.getLogger(__name__)

LOADING, READY, FAILED = "loading", "ready", "error"
# Fixed while we run: by `rag ingest`, or by the Chroma server coming back.
_RETRYABLE = (IndexMissingError, IndexMismatchError, StoreUnavailableError)
_RETRY_EVERY = 5.0  # seconds between attempts to reopen a missing index
History = list[tuple[str, str]]


class ModelLoadingError(RagError):
    """The model is still loading; the request can be repeated in a few seconds."""

    retry_after = 5


class BusyError(RagError):
    """Too many requests are already waiting for the model."""

    retry_after = 10


class RateLimitError(RagError):
    """This client asked more questions per minute than the server allows."""

    def __init__(self, message: str, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimiter:
    """Sliding one-minute window of question counts per client key."""

    def __init__(self, per_minute: int, window: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window = window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Count one question for `key`, or raise RateLimitError when over the limit."""
        now = time.monotonic()
        with self._lock:
            if len(self._hits) > 10_000:  # forget idle clients
                cutoff = now - self.window
                self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > cutoff}
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.per_minute:
                wait = max(1, int(hits[0] + self.window - now) + 1)
                raise RateLimitError(
                    f"Too many questions: the limit is {self.per_minute} per minute. "
                    f"Try again in {wait} s.",
                    retry_after=wait,
                )
            hits.append(now)


class ChatService:
    """Owns the QA pipeline for a server: background loading, status, questions, rendering."""

    def __init__(
        self, settings: Settings, *, qa: Any = None, llm: Any = None, embeddings: Any = None
    ) -> None:
        self.settings = settings
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.secrets = settings.secret_values()
        self.api_token = settings.api_token.get_secret_value() if settings.api_token else ""
        self._qa = qa
        self._index = getattr(getattr(qa, "retriever", None), "index", None)
        self._llm, self._embeddings = llm, embeddings
        self._state = READY if qa is not None else LOADING
        self._error: RagError | None = None
        self._ready = threading.Event()
        if qa is not None:
            self._ready.set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_attempt = 0.0
        self._waiting = 0  # API requests waiting for or using the model

    # ---- loading -------------------------------------------------------------------------

    def start(self) -> None:
        """Start loading the models and the index in a background thread; returns at once."""
        with self._lock:
            if self._qa is not None or (self._thread and self._thread.is_alive()):
                return
            self._last_attempt = time.monotonic()
            self._thread = threading.Thread(target=self._load, name="rag-load", daemon=True)
            self._thread.start()

    def _load(self) -> None:
        from rag.chain import warm_quietly
        from rag.embeddings import make_embeddings
        from rag.llm import make_llm
        from rag.pipeline import build_qa, open_index_for

        try:
            if self._embeddings is None:
                self._embeddings = make_embeddings(self.settings)
            index_error = None
            try:
                open_index_for(self.settings, self._embeddings)
            except _RETRYABLE as exc:  # say so now; the LLM still loads for the retry
                index_error = exc
                self._set(FAILED, exc)
            if self._llm is None:
                self._llm = make_llm(self.settings)
            if index_error is not None:
                return
            qa = build_qa(self.settings, llm=self._llm, embeddings=self._embeddings)
        except RagError as exc:
            self._set(FAILED, exc)
        except Exception as exc:  # a library failure: keep the server up, show the reason
            log.exception("Loading the model failed")
            self._set(FAILED, ModelError(f"Loading the model failed: {exc}"))
        else:
            with self._lock:
                self._qa = qa
                self._index = getattr(qa.retriever, "index", None) or open_index_for(
                    self.settings, self._embeddings
                )
            self._set(READY, None)
            log.info("Model and index loaded; ready for questions")
            # A question asked meanwhile waits for this, as it would have read the same prompt.
            warm_quietly(qa)

    def _set(self, state: str, error: RagError | None) -> None:
        with self._lock:
            self._state, self._error = state, error
        if state == READY:
            self._ready.set()
        elif error is not None:
            log.warning("Not ready: %s", error)

    def _maybe_retry(self) -> None:
        """Reopen the index now and then if it was missing: `rag ingest` may have built it."""
        if (
            self._state == FAILED
            and isinstance(self._error, _RETRYABLE)
            and time.monotonic() - self._last_attempt > _RETRY_EVERY
        ):
            self.start()

    @property
    def state(self) -> str:
        """One of "loading", "ready", "error"."""
        self._maybe_retry()
        return self._state

    @property
    def error(self) -> RagError | None:
        """Why the service is not ready, when state is "error"."""
        return self._error

    def describe(self, exc: BaseException | None) -> str:
        """An error's message for users, with any secret setting's value masked."""
        return redact(str(exc), self.secrets)

    def status(self) -> dict[str, str]:
        """Machine-readable status: {"status": ..., "message": ...}."""
        state = self.state
        message = {LOADING: "Model loading…", READY: "Ready."}.get(state)
        return {"status": state, "message": message or self.describe(self._error)}

    def status_markdown(self) -> str:
        """The status line shown on the chat page (escaped Markdown)."""
        state = self.state
        if state == READY:
            return "**Ready.** Ask a question about the news articles."
        if state == LOADING:
            return "**Model loading…** You can type your question; it is answered when ready."
        return "**Not ready:** " + escape_markdown(self.describe(self._error))

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the QA is loaded (True) or the timeout passes / loading failed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready.is_set():
            if self.state == FAILED:
                return False
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._ready.wait(0.2 if left is None else min(0.2, left))
        return True

    def qa(self, wait: float = 0.0) -> Any:
        """The loaded QA, else raise ModelLoadingError or the reason loading failed."""
        if wait:
            self.wait_ready(wait)
        state = self.state
        if state == READY:
            return self._qa
        if state == LOADING:
            raise ModelLoadingError("The model is still loading. Try again in a few seconds.")
        err = self._error
        raise type(err)(str(err)) if err is not None else ModelError("The model is not loaded.")

    # ---- questions -----------------------------------------------------------------------

    def check_question(self, question: object) -> str:
        """The cleaned question, or QuestionError (checked before waiting for the model)."""
        from rag.chain import clean_question

        return clean_question(question, self.settings.max_question_chars)

    def check_rate(self, client: str) -> None:
        """Raise RateLimitError if `client` asked too many questions in the last minute."""
        self.limiter.check(client)

    def ask(self, question: str, history: History | None = None, admitted: bool = False) -> Answer:
        """Answer one question (the same Answer as `rag ask --json`). BusyError when
        `queue_limit` requests already wait, unless `admitted` (by the Gradio queue, which
        bounds its own waiting requests)."""
        question = self.check_question(question)
        qa = self.qa()
        self._reserve(admitted)
        try:
            return qa.ask(question, history or [])
        except RagError:
            raise
        except Exception as exc:  # a library failure: say so, keep the server up
            log.exception("Answering failed")
            raise ModelError(f"Answering failed: {exc}") from exc
        finally:
            self._release()

    def stream(
        self,
        question: str,
        history: History | None = None,
        wait: float = 0.0,
        admitted: bool = False,
    ) -> Iterator[str | Answer]:
        """Yield tokens, then the final Answer; errors surface as RagError from the iterator.

        Checks (question, readiness, queue room) run now, before the first token is asked for.
        The pipeline runs in its own thread to the end even if the caller stops reading, so an
        abandoned stream (closed tab, dropped connection) never keeps the LLM lock.
        """
        question = self.check_question(question)
        qa = self.qa(wait=wait)
        self._reserve(admitted)
        parts: queue.Queue = queue.Queue()
        done = object()

        def produce() -> None:
            try:
                for part in qa.stream(question, history or []):
                    parts.put(part)
            except Exception as exc:
                parts.put(exc)
            finally:
                self._release()
                parts.put(done)

        threading.Thread(target=produce, name="rag-answer", daemon=True).start()

        def consume() -> Iterator[str | Answer]:
            while (part := parts.get()) is not done:
                if isinstance(part, RagError):
                    raise part
                if isinstance(part, Exception):
                    log.error("Answering failed", exc_info=part)
                    raise ModelError(f"Answering failed: {part}") from part
                yield part

        return consume()

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

    def article(self, source: str) -> tuple[str, str] | None:
        """(title, full text) of an ingested article, or None."""
        # The retriever's index is reopened when another process writes the store.
        index = getattr(getattr(self._qa, "retriever", None), "index", None) or self._index
        return index.article(source) if index is not None else None

    def article_html(self, source: str, start: int, end: int, n: int | None = None) -> str:
        """The article as escaped HTML with the passage [start:end] in `<mark id="rag-passage">`."""
        if self._index is None:
            return empty_html("The articles are still loading. Click the citation again soon.")
        found = self.article(source)
        if found is None:
            return empty_html(f"The article {source} is not in the index any more.")
        title, text = found
        return render_article(source, title, text, start, end, n)


# ---- history ------------------------------------------------------------------------------


def normalize_history(raw: object) -> History:
    """[[question, answer], ...] or [{"role", "content"}, ...] -> [(question, answer), ...]."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise QuestionError("history must be a list of [question, answer] pairs.")
    if all(isinstance(item, dict) for item in raw):
        pairs: History = []
        pending: str | None = None
        for item in raw:
            role, content = item.get("role"), item.get("content")
            if role not in ("user", "assistant", "system") or not isinstance(content, str):
                raise QuestionError(
                    'Each history message needs "role" (user or assistant) and text "content".'
                )
            if role == "user":
                pending = content
            elif role == "assistant" and pending is not None:
                pairs.append((pending, content))
                pending = None
        return pairs
    pairs = []
    for item in raw:
        if (
            not isinstance(item, (list, tuple))
            or len(item) != 2
            or not all(isinstance(x, str) for x in item)
        ):
            raise QuestionError(
                "history must be a list of [question, answer] pairs of strings, "
                'or of {"role": ..., "content": ...} messages.'
            )
        pairs.append((item[0], item[1]))
    return pairs
