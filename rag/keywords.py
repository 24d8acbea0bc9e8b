"""Stage 6a, keyword search: BM25 over every chunk (bm25s), to catch exact words dense search misses."""

from __future__ import annotations

import threading
import time
from typing import Any

from langchain_core.documents import Document

from rag.store import Index


def _stem(words: list[str]) -> list[str]:
    # A crude prefix stemmer: "mediate"/"mediation", "president"/"presidential" meet.
    # (bm25s calls it on the whole vocabulary at once.)
    return [word[:6] for word in words]


class KeywordIndex:
    """BM25 over every chunk in the index (bm25s), to catch exact words dense search misses.

    It keeps only chunk ids and the BM25 statistics in memory, and reads hit chunks back from
    the store, so a chunk deleted since it was built never comes back. When the store changes
    (another process ran `rag ingest`), it is rebuilt in the background.
    """

    CHECK_EVERY = 10.0  # seconds between checks whether the store changed

    def __init__(self, index: Index) -> None:
        import bm25s

        self._bm25s = bm25s
        self.index = index
        self._lock = threading.Lock()
        self._rebuilding = False
        self._checked = time.monotonic()
        self._state = self._build()

    def _build(self) -> tuple[list[str], Any]:
        ids: list[str] = []
        texts: list[str] = []
        offset, page_size = 0, 5000
        while True:
            page = self.index.collection.get(include=["documents"], limit=page_size, offset=offset)
            ids += page["ids"]
            texts += page["documents"] or []
            if len(page["ids"]) < page_size:
                break
            offset += page_size
        bm25 = self._bm25s.BM25()
        if ids:
            bm25.index(self._tokenize(texts), show_progress=False)
        return ids, bm25

    def _tokenize(self, texts: list[str]) -> Any:
        return self._bm25s.tokenize(texts, stopwords="en", stemmer=_stem, show_progress=False)

    def follow(self, index: Index) -> None:
        """Read from `index` (a fresh view of the store) from now on, and rebuild from it."""
        self.index = index
        self._refresh_if_stale(stale=True)

    def search(self, query: str, k: int) -> list[Document]:
        """The `k` best chunks for `query` by BM25 (fewer if fewer match at all)."""
        ids, bm25 = self._state
        found: list[str] = []
        if ids:
            hits, scores = bm25.retrieve(
                self._tokenize([query]), k=min(k, len(ids)), show_progress=False
            )
            found = [ids[i] for i, score in zip(hits[0], scores[0], strict=True) if score > 0]
        docs = get_documents(self.index, found)
        self._refresh_if_stale(stale=len(docs) < len(found))
        return docs

    def _refresh_if_stale(self, stale: bool) -> None:
        now = time.monotonic()
        if not stale and now - self._checked < self.CHECK_EVERY:
            return
        self._checked = now
        if not stale and self.index.count_chunks() == len(self._state[0]):
            return
        with self._lock:
            if self._rebuilding:
                return
            self._rebuilding = True

        def rebuild() -> None:
            try:
                self._state = self._build()
            finally:
                self._rebuilding = False

        threading.Thread(target=rebuild, name="rag-bm25", daemon=True).start()


def get_documents(index: Index, ids: list[str]) -> list[Document]:
    """The chunks with these ids, in that order; ids no longer in the store are left out."""
    if not ids:
        return []
    page = index.collection.get(ids=ids, include=["documents", "metadatas"])
    by_id = {
        i: (text, meta)
        for i, text, meta in zip(
            page["ids"], page["documents"] or [], page["metadatas"] or [], strict=True
        )
    }
    return [
        Document(page_content=by_id[i][0], metadata=by_id[i][1], id=i) for i in ids if i in by_id
    ]
