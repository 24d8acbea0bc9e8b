"""The server's QA pipeline, loaded in a background thread so that the server answers at once.

States: "loading" until the models and the index are ready, "ready", or "error" with the reason.
A missing or mismatched index, or an unreachable Chroma server, is fixed while the server runs
(`rag ingest`, the server coming back): the loading thread keeps trying, every few seconds,
until it works. Reading the state never starts anything.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from langchain_core.language_models import BaseChatModel

from rag.chain import QA, warm_quietly
from rag.embeddings.base import SentenceEncoder
from rag.errors import (
    IndexMismatchError,
    IndexMissingError,
    ModelError,
    ModelLoadingError,
    RagError,
    StoreUnavailableError,
)
from rag.settings import Settings

log = logging.getLogger(__name__)

LOADING, READY, FAILED = "loading", "ready", "error"
# Fixed while we run: by `rag ingest`, or by the Chroma server coming back.
RETRYABLE = (IndexMissingError, IndexMismatchError, StoreUnavailableError)
RETRY_EVERY = 5.0  # seconds between attempts to reopen a missing index


class Loader:
    """Builds the QA once in the background; `qa()` hands it out when ready."""

    def __init__(
        self,
        settings: Settings,
        *,
        qa: QA | Any = None,
        llm: BaseChatModel | None = None,
        embeddings: SentenceEncoder | None = None,
        retry_every: float = RETRY_EVERY,
    ) -> None:
        self.settings = settings
        self.retry_every = retry_every
        self._qa = qa
        self._llm, self._embeddings = llm, embeddings
        self._state = READY if qa is not None else LOADING
        self._error: RagError | None = None
        self._ready = threading.Event()
        if qa is not None:
            self._ready.set()
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Start loading in a background thread (once); returns at once."""
        with self._lock:
            if self._qa is not None or self.thread is not None:
                return
            self.thread = threading.Thread(target=self._run, name="rag-load", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                qa = self._build()
            except RETRYABLE as exc:
                self._set(FAILED, exc)
                time.sleep(self.retry_every)
                continue
            except RagError as exc:
                self._set(FAILED, exc)
                return
            except Exception:  # a library failure: keep the server up; the log has the reason
                log.exception("Loading the model failed")
                error = "Loading the model failed; the server log has the details. Fix the "
                error += "cause and restart `rag serve`."
                self._set(FAILED, ModelError(error))
                return
            with self._lock:
                self._qa = qa
            self._set(READY, None)
            log.info("Model and index loaded; ready for questions")
            # A question asked meanwhile waits for this, as it would have read the same prompt.
            warm_quietly(qa)
            return

    def _build(self) -> QA:
        """The models (kept across attempts) and the index; the LLM loads even while the index
        is missing, so the retry after `rag ingest` is quick."""
        from rag.embeddings import make_embeddings
        from rag.llm import make_llm
        from rag.pipeline import build_qa, open_index_for

        if self._embeddings is None:
            self._embeddings = make_embeddings(self.settings)
        index_error: RagError | None = None
        try:
            open_index_for(self.settings, self._embeddings)
        except RETRYABLE as exc:  # say so now; the LLM still loads for the retry
            index_error = exc
            self._set(FAILED, exc)
        if self._llm is None:
            self._llm = make_llm(self.settings)
        if index_error is not None:
            raise index_error
        return build_qa(self.settings, llm=self._llm, embeddings=self._embeddings)

    def _set(self, state: str, error: RagError | None) -> None:
        with self._lock:
            self._state, self._error = state, error
        if state == READY:
            self._ready.set()
        elif error is not None:
            log.warning("Not ready: %s", error)

    @property
    def state(self) -> str:
        """One of "loading", "ready", "error"."""
        return self._state

    @property
    def error(self) -> RagError | None:
        """Why the pipeline is not ready, when state is "error"."""
        return self._error

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the QA is loaded (True), or the timeout passes or loading failed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready.is_set():
            if self._state == FAILED:
                return False
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._ready.wait(0.2 if left is None else min(0.2, left))
        return True

    def qa(self, wait: float = 0.0) -> QA:
        """The loaded QA, else raise ModelLoadingError or the reason loading failed."""
        if wait:
            self.wait_ready(wait)
        if self._state == READY:
            return self._qa
        if self._state == LOADING:
            raise ModelLoadingError("The model is still loading. Try again in a few seconds.")
        err = self._error
        raise type(err)(str(err)) if err is not None else ModelError("The model is not loaded.")
