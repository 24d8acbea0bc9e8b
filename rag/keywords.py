"""Stage 6a, keyword search: BM25 over every chunk, to catch exact words dense search misses.

The index is a tantivy index saved beside the store (`KeywordStore`), written by `rag ingest`
in step with each batch of chunks it writes to Chroma, and opened (memory-mapped, in
milliseconds) by a server instead of being rebuilt from every chunk. Tantivy gives what a
saved index needs: incremental adds and deletes, commits that are atomic on disk (a new
`meta.json` replaces the old), readers in other processes that pick up each commit, and
segments that are read through mmap, so a reader's memory does not grow with the corpus.
Words are cut as before (bm25s' tokenizer, English stopwords, a six-letter prefix stemmer).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from rag.errors import IndexBusyError

if TYPE_CHECKING:
    from rag.settings import Settings
    from rag.store import Index

log = logging.getLogger(__name__)

PENDING = "rag-pending.json"  # sources whose chunks Chroma may hold in another version
_WRITER_HEAP = 64 * 2**20
_PAGE = 5000
FILTERED_DEPTH = 50  # with a filter, BM25 hits read per hit wanted (then checked in Chroma)


def _stem(words: list[str]) -> list[str]:
    # A crude prefix stemmer: "mediate"/"mediation", "president"/"presidential" meet.
    # (bm25s calls it on the whole vocabulary at once.)
    return [word[:6] for word in words]


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """The words BM25 counts in each text: lower case, no English stopwords, stemmed."""
    import bm25s

    if not texts:
        return []
    tokens: list[list[str]] = bm25s.tokenize(
        list(texts), stopwords="en", stemmer=_stem, return_ids=False, show_progress=False
    )
    return tokens


def _schema() -> Any:
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("source", stored=False, tokenizer_name="raw", index_option="basic")
    # Pre-tokenized words joined by spaces: tantivy's whitespace tokenizer only splits them.
    builder.add_text_field("words", stored=False, tokenizer_name="whitespace", index_option="freq")
    return builder.build()


class KeywordStore:
    """A tantivy BM25 index of chunk ids and their words, on disk at `path` (or in memory).

    Writes are journalled: `begin(sources)` records the articles about to change before Chroma
    is written, `replace` commits their new chunks here and clears the record. If a run dies
    in between, `recover` re-reads those articles from Chroma, so the two never disagree for
    long.
    """

    def __init__(self, path: Path | None, create: bool = False) -> None:
        import bm25s  # noqa: F401  imported now (~0.4 s), not by the first question
        import tantivy

        self.path = path
        if path is not None and create:
            path.mkdir(parents=True, exist_ok=True)
        self._index = tantivy.Index(_schema(), path=str(path) if path else None, reuse=True)
        self._schema = self._index.schema
        self._writer: Any = None
        self._lock = threading.Lock()
        self._meta_mtime = self._mtime()

    @staticmethod
    def exists(path: Path) -> bool:
        """True when a saved keyword index is at `path`."""
        return (path / "meta.json").is_file()

    # ---- reading -----------------------------------------------------------------------

    def count(self) -> int:
        """Number of chunks in the committed index."""
        return int(self._index.searcher().num_docs)

    def search(self, query: str, k: int) -> list[str]:
        """Ids of the `k` chunks that score best for `query` by BM25, best first."""
        import tantivy

        words = sorted(set(tokenize([query])[0]))
        if not words:
            return []
        clauses = [
            (tantivy.Occur.Should, tantivy.Query.term_query(self._schema, "words", w))
            for w in words
        ]
        searcher = self._index.searcher()
        hits = searcher.search(tantivy.Query.boolean_query(clauses), k, count=False).hits
        return [str(searcher.doc(address)["id"][0]) for score, address in hits if score > 0]

    def ids(self) -> set[str]:
        """Every chunk id in the committed index (for consistency checks)."""
        import tantivy

        searcher = self._index.searcher()
        hits = searcher.search(tantivy.Query.all_query(), max(1, searcher.num_docs), count=False)
        return {str(searcher.doc(address)["id"][0]) for _, address in hits.hits}

    def _mtime(self) -> int:
        if self.path is None:
            return 0
        try:
            return (self.path / "meta.json").stat().st_mtime_ns
        except OSError:
            return 0

    def reload(self) -> bool:
        """See the latest commit (another process's too); True if there was a new one."""
        mtime = self._mtime()
        if mtime == self._meta_mtime:
            return False
        self._meta_mtime = mtime
        self._index.reload()
        return True

    # ---- writing -----------------------------------------------------------------------

    def _writer_or_open(self) -> Any:
        if self._writer is None:
            try:
                self._writer = self._index.writer(_WRITER_HEAP, 1)
            except ValueError as exc:
                raise IndexBusyError(
                    f"The keyword index at {self.path} is being written by another process "
                    f"({exc}). Wait for the other `rag ingest` to finish, then run it again."
                ) from exc
        return self._writer

    def begin(self, sources: Iterable[str]) -> None:
        """Record that these articles are about to change in Chroma (crash-safe)."""
        if self.path is None:
            return
        pending = set(self.pending()) | set(sources)
        _write_atomic(self.path / PENDING, json.dumps(sorted(pending)))

    def pending(self) -> list[str]:
        """Articles a killed run may have left out of step with Chroma."""
        if self.path is None:
            return []
        try:
            return list(json.loads((self.path / PENDING).read_text()))
        except (OSError, ValueError):
            return []

    def replace(self, sources: Iterable[str], chunks: Sequence[tuple[str, str, str]]) -> None:
        """Drop every chunk of `sources`, add `chunks` ((id, source, text), ...) and commit."""
        with self._lock:
            writer = self._writer_or_open()
            for source in sources:
                writer.delete_documents_by_term("source", source)
            self._add(writer, chunks)
            self._commit(writer)

    def rebuild(self, pages: Iterable[Sequence[tuple[str, str, str]]]) -> None:
        """Replace the whole index with these chunks, in one commit: readers see the old index
        until the new one is complete."""
        with self._lock:
            writer = self._writer_or_open()
            writer.delete_all_documents()
            for page in pages:
                self._add(writer, page)
            self._commit(writer)

    @staticmethod
    def _add(writer: Any, chunks: Sequence[tuple[str, str, str]]) -> None:
        import tantivy

        words = tokenize([text for _, _, text in chunks])
        for (chunk_id, source, _), bag in zip(chunks, words, strict=True):
            doc = tantivy.Document(id=chunk_id, source=source)
            doc.add_text("words", " ".join(bag))
            writer.add_document(doc)

    def _commit(self, writer: Any) -> None:
        writer.commit()  # atomic: tantivy writes the new segments, then replaces meta.json
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.path / PENDING).unlink()
        self._index.reload()
        self._meta_mtime = self._mtime()

    def close(self) -> None:
        """Let background merges finish and release the writer (and its lock file)."""
        with self._lock:
            if self._writer is not None:
                writer, self._writer = self._writer, None
                writer.wait_merging_threads()


def _write_atomic(path: Path, text: str) -> None:
    """Write a new file beside `path`, flush it to disk, then rename it over `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def read_chunks(index: Index, where: Any = None) -> Iterable[list[tuple[str, str, str]]]:
    """Pages of (id, source, text) for the index's chunks (those matching `where`)."""
    offset = 0
    while True:
        page = index.collection.get(
            where=where, include=["documents", "metadatas"], limit=_PAGE, offset=offset
        )
        metas = page["metadatas"] or []
        texts = page["documents"] or []
        yield [(i, str(m["source"]), t) for i, m, t in zip(page["ids"], metas, texts, strict=True)]
        if len(page["ids"]) < _PAGE:
            return
        offset += _PAGE


def sync_keywords(index: Index, store: KeywordStore) -> str | None:
    """Bring `store` in line with the chunks in Chroma; a note for the admin if it had to.

    Articles a killed run left pending are re-read; an index whose size differs from the
    store's (a store from before the saved index, or one written by other means) is rebuilt
    from every chunk.
    """
    pending = store.pending()
    if pending:
        where: Any = {"source": {"$in": pending}}
        chunks = [c for page in read_chunks(index, where) for c in page]
        store.replace(pending, chunks)
    if store.count() == index.count_chunks():
        return None
    started = time.perf_counter()
    store.rebuild(read_chunks(index))
    return (
        f"The keyword index was rebuilt from the {store.count()} chunks in the store "
        f"({time.perf_counter() - started:.1f}s)."
    )


def keyword_path(settings: Settings, collection: str | None = None) -> Path | None:
    """Where the collection's saved keyword index lives: under `keyword_dir`, by default
    `<store_dir>/keywords` for an embedded store; None on a Chroma server without it."""
    root = settings.keyword_dir
    if root is None and not settings.chroma_host:
        root = settings.store_dir / "keywords"
    return None if root is None else root / (collection or settings.collection)


def open_keywords(settings: Settings, *, create: bool) -> KeywordStore | None:
    """The saved keyword index of `settings`' collection (a new one with `create`), or None
    when there is none to read."""
    path = keyword_path(settings)
    if path is None or not (create or KeywordStore.exists(path)):
        return None
    return KeywordStore(path, create=create)


def replace_keywords(settings: Settings, new_collection: str) -> None:
    """Make the keyword index of `new_collection` that of `settings.collection` (after the same
    swap in Chroma). A kill between the two renames leaves no saved index, which the next
    `rag ingest` rebuilds from the store (`sync_keywords`); readers meanwhile build one."""
    path, new = keyword_path(settings), keyword_path(settings, new_collection)
    if path is None or new is None or not new.exists():
        return
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(new, path)
    shutil.rmtree(old, ignore_errors=True)


def drop_keywords(settings: Settings) -> None:
    """Delete the collection's saved keyword index (with the collection)."""
    path = keyword_path(settings)
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


class KeywordIndex:
    """The retriever's keyword search: the saved `KeywordStore` of the index, or, where there
    is none (a Chroma server without `RAG_KEYWORD_DIR`), one built in memory from every chunk.

    Hits are read back from the store, so a chunk deleted since never comes back. A saved index
    is reloaded when another process commits to it; one built in memory is rebuilt in the
    background when the store's size changes.
    """

    CHECK_EVERY = 10.0  # seconds between checks whether the store changed

    def __init__(self, index: Index) -> None:
        self.index = index
        self._rebuilding = False
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        saved = index.keywords
        if saved is not None and saved.count() == 0 and index.count_chunks() > 0:
            saved = None  # made empty by other means than `rag ingest` (which fills it)
        self.store = saved or self._build()

    @property
    def saved(self) -> bool:
        """True when searching the index saved by `rag ingest`, not one built here."""
        return self.store.path is not None

    def _build(self) -> KeywordStore:
        log.warning(
            "No saved keyword index for this store: building one in memory from every chunk. "
            "Run `rag ingest` (with RAG_KEYWORD_DIR on a Chroma server) to save it."
        )
        store = KeywordStore(None)
        store.rebuild(read_chunks(self.index))
        return store

    def follow(self, index: Index) -> None:
        """Read from `index` (a fresh view of the store) from now on."""
        self.index = index
        if index.keywords is not None:
            self.store = index.keywords
        else:
            self._refresh_if_stale(stale=True)

    def search(self, query: str, k: int, where: Any = None) -> list[Document]:
        """The `k` best chunks for `query` by BM25 (fewer if fewer match at all), of those
        the Chroma `where` admits: the BM25 ranking is read deeper (`FILTERED_DEPTH`) and each
        hit is checked against `where` in the store, so no other article comes back."""
        found = self.store.search(query, max(k * FILTERED_DEPTH, 200) if where else k)
        docs = get_documents(self.index, found, where)
        if where is None:
            self._refresh_if_stale(stale=len(docs) < len(found))
        return docs[:k]

    def _refresh_if_stale(self, stale: bool) -> None:
        now = time.monotonic()
        if not stale and now - self._checked < self.CHECK_EVERY:
            return
        self._checked = now
        if self.saved:
            self.store.reload()
            return
        if not stale and self.index.count_chunks() == self.store.count():
            return
        with self._lock:
            if self._rebuilding:
                return
            self._rebuilding = True

        def rebuild() -> None:
            try:
                self.store = self._build()
            finally:
                self._rebuilding = False

        threading.Thread(target=rebuild, name="rag-bm25", daemon=True).start()


def get_documents(index: Index, ids: list[str], where: Any = None) -> list[Document]:
    """The chunks with these ids (that `where` admits), in that order; ids no longer in the
    store are left out."""
    if not ids:
        return []
    page = index.collection.get(ids=ids, where=where, include=["documents", "metadatas"])
    by_id = {
        i: (text, meta)
        for i, text, meta in zip(
            page["ids"], page["documents"] or [], page["metadatas"] or [], strict=True
        )
    }
    return [
        Document(page_content=by_id[i][0], metadata=by_id[i][1], id=i) for i in ids if i in by_id
    ]
