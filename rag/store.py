"""Stage 4, store: the Chroma index (chunks for search, plus one record per article)."""

from __future__ import annotations

import base64
import contextlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.chroma import index_location, make_client
from rag.chunking import split_sentences
from rag.errors import IndexMismatchError, IndexMissingError
from rag.schema import Article, Chunk
from rag.stories import pack, signature

if TYPE_CHECKING:
    import chromadb
    from langchain_chroma import Chroma

    from rag.embeddings.base import SentenceEncoder
    from rag.keywords import KeywordStore
    from rag.settings import Settings

SCHEMA_VERSION = "2"  # 2: each chunk carries its sentences' spans and vectors
_MAX_BATCH = 4000  # below Chroma's per-call limit
_BULKY = (
    "article_text",
    "sentences",
    "sentence_vectors",
    "minhash",
)  # metadata not needed in listings


STAMP = "rag-stamp"  # touched in the store folder after every write, for readers to notice


@dataclass
class Index:
    """One Chroma collection of chunks. Chunk 0 of each article also carries the article's full
    text and chunk count, so one `add` call (one transaction) writes an article completely.

    An embedded store read by one process (`rag serve`) and written by another (`rag ingest`)
    goes stale in the reader: Chroma keeps its vector index in memory. Writers touch a stamp
    file; a reader compares `stamp()` and calls `reopen()` for a fresh view.
    """

    chunks: Chroma
    embeddings: SentenceEncoder
    stamp_file: Path | None = None  # None on a Chroma server, which is always current
    reopen_with: Callable[[], Index] | None = None
    keywords: KeywordStore | None = None  # the saved BM25 index, written in step with Chroma

    def stamp(self) -> float | None:
        """When the store was last written by anyone (None if unknown or always current)."""
        if self.stamp_file is None:
            return None
        try:
            return self.stamp_file.stat().st_mtime_ns
        except OSError:
            return None

    def reopen(self) -> Index:
        """A fresh view of the same index, seeing every write made since it was opened."""
        return self.reopen_with() if self.reopen_with else self

    def _touch(self) -> None:
        if self.stamp_file is not None:
            self.stamp_file.touch()
            os.utime(self.stamp_file)

    @property
    def collection(self) -> chromadb.Collection:
        """The raw Chroma collection behind the LangChain vector store."""
        return self.chunks._collection

    def article_states(self) -> dict[str, dict[str, Any]]:
        """Map each stored article's source to its head-chunk metadata (sha256, n_chunks, title)."""
        states: dict[str, dict[str, Any]] = {}
        offset, page_size = 0, 2000
        while True:
            page = self.collection.get(
                where={"chunk": 0}, include=["metadatas"], limit=page_size, offset=offset
            )
            for meta in page["metadatas"] or []:
                meta = {k: v for k, v in meta.items() if k not in _BULKY}
                states[str(meta["source"])] = meta
            if len(page["ids"]) < page_size:
                return states
            offset += page_size

    def article(self, source: str) -> tuple[str, str] | None:
        """Return (title, full text) of an ingested article, or None."""
        page = self.collection.get(
            where={"$and": [{"source": source}, {"chunk": 0}]}, include=["metadatas"], limit=1
        )
        if not page["ids"]:
            return None
        meta = (page["metadatas"] or [{}])[0]
        return str(meta["title"]), str(meta["article_text"])

    def article_record(self, source: str) -> dict[str, Any] | None:
        """An ingested article's head-chunk metadata with its full text ("article_text")."""
        page = self.collection.get(
            where={"$and": [{"source": source}, {"chunk": 0}]}, include=["metadatas"], limit=1
        )
        if not page["ids"]:
            return None
        meta = dict((page["metadatas"] or [{}])[0])
        return {k: v for k, v in meta.items() if k not in _BULKY or k == "article_text"}

    def has_folders(self) -> bool:
        """Whether the articles carry their folders (indexes from before them do not)."""
        page = self.collection.get(where={"chunk": 0}, include=["metadatas"], limit=1)
        metas = page["metadatas"] or []
        return not metas or "folders" in metas[0]

    def count_chunks(self) -> int:
        """Number of chunks in the index."""
        return self.collection.count()

    def write(self, batch: list[tuple[Article, list[Chunk]]]) -> None:
        """Replace these articles' chunks: delete the old ones, then add the new in one call.

        A kill between the two leaves the article absent (and the next run adds it); never a
        mix of versions or chunks without their article. The keyword index follows in one
        commit after Chroma's; the articles in flight are journalled first (`KeywordStore.begin`)
        so that a kill in between is repaired by the next run (`rag.keywords.sync_keywords`).
        """
        sources = [article.source for article, _ in batch]
        if not sources:
            return
        if self.keywords is not None:
            self.keywords.begin(sources)
        where: Any = {"source": {"$in": sources}}
        self.collection.delete(where=where)
        ids, texts, metas = _records(batch)
        if texts:
            vectors, sentence_meta = embed_chunks(self.embeddings, texts)
            for meta, extra in zip(metas, sentence_meta, strict=True):
                meta.update(extra)
            # Chunk 0 (the article's record) goes in the last call, so that if a huge batch
            # needs several calls, an article is never marked complete before all its chunks.
            order = sorted(range(len(texts)), key=lambda i: metas[i]["chunk"] == 0)
            for i in range(0, len(order), _MAX_BATCH):
                part = order[i : i + _MAX_BATCH]
                self.collection.add(
                    ids=[ids[j] for j in part],
                    documents=[texts[j] for j in part],
                    metadatas=[metas[j] for j in part],
                    embeddings=[vectors[j] for j in part],  # type: ignore[arg-type]
                )
        if self.keywords is not None:
            self.keywords.replace(
                sources, list(zip(ids, [m["source"] for m in metas], texts, strict=True))
            )
        self._touch()

    def update_metadata(self, changes: dict[str, dict[str, Any]]) -> None:
        """Set these metadata keys on every chunk of each article ({source: {key: value}}),
        keeping the rest; the text, vectors and keyword index are untouched."""
        for start in range(0, len(changes), 500):
            sources = list(changes)[start : start + 500]
            where: Any = {"source": {"$in": sources}}
            page = self.collection.get(where=where, include=["metadatas"])
            metas = page["metadatas"] or []
            ids = list(page["ids"])
            update = [changes[str(m["source"])] for m in metas]
            for i in range(0, len(ids), _MAX_BATCH):
                self.collection.update(
                    ids=ids[i : i + _MAX_BATCH],
                    metadatas=update[i : i + _MAX_BATCH],  # type: ignore[arg-type]
                )
        if changes:
            self._touch()

    def delete_chunks(self, sources: list[str]) -> None:
        """Remove every chunk of these articles (from Chroma, then from the keyword index)."""
        if sources:
            if self.keywords is not None:
                self.keywords.begin(sources)
            where: Any = {"source": {"$in": sources}}
            self.collection.delete(where=where)
            if self.keywords is not None:
                self.keywords.replace(sources, [])
            self._touch()

    def close(self) -> None:
        """Release what a writer holds (the keyword index's writer and its lock)."""
        if self.keywords is not None:
            self.keywords.close()

    remove = delete_chunks


def _records(batch: list[tuple[Article, list[Chunk]]]) -> tuple[list[str], list[str], list[Any]]:
    """Ids, texts and metadata of the batch's chunks, as the index stores them."""
    ids: list[str] = []
    texts: list[str] = []
    metas: list[dict[str, Any]] = []
    for article, chunks in batch:
        for chunk in chunks:
            meta: dict[str, Any] = {
                **filterable(article.metadata),  # first: the index's own keys always win
                "source": article.source,
                "folders": folders_of(article.source),
                "title": article.title,
                "sha256": article.sha256,
                "chunk": chunk.index,
                "start": chunk.start,
                "end": chunk.end,
            }
            if chunk.index == 0:
                meta["n_chunks"] = len(chunks)
                meta["n_chars"] = len(article.text)
                meta["article_text"] = article.text
                meta["minhash"] = pack(signature(article.text))  # for story groups
            texts.append(chunk.text)
            metas.append(meta)
            ids.append(f"{article_id(article.source)}-{article.sha256[:12]}-{chunk.index}")
    return ids, texts, metas


def folders_of(source: str) -> list[str]:
    """The folders an article lies in, outermost first: "bbc/business/001.txt" -> ["bbc",
    "bbc/business"]; an article at the corpus root is in [""] (Chroma keeps no empty list)."""
    parts = source.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))] or [""]


def filterable(metadata: dict[str, str]) -> dict[str, Any]:
    """Article metadata as stored on its chunks: a YYYY-MM-DD date also as the integer
    YYYYMMDD ("date_int"), for range filters such as {"date_int": {"$gte": 20250301}}."""
    meta: dict[str, Any] = dict(metadata)
    date = str(meta.get("date", ""))
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        meta["date_int"] = int(date.replace("-", ""))
    return meta


def embed_chunks(
    embeddings: SentenceEncoder, texts: list[str]
) -> tuple[list[list[float]], list[dict[str, str]]]:
    """Chunk vectors, plus for each chunk the metadata of its sentences: their spans in the chunk
    ("sentences") and their vectors ("sentence_vectors"), pooled over the sentence and the one
    before it, from the chunk's own forward pass (see `rag.embeddings`)."""
    spans = [split_sentences(text) for text in texts]
    context = [[(s[j - 1][0] if j else s[j][0], s[j][1]) for j in range(len(s))] for s in spans]
    vectors, per_chunk = embeddings.encode_with_sentences(texts, context)
    meta = [
        {"sentences": pack_spans(s), "sentence_vectors": pack_vectors(v)}
        for s, v in zip(spans, per_chunk, strict=True)
    ]
    return vectors.tolist(), meta


def pack_spans(spans: list[tuple[int, int]]) -> str:
    """[(0, 12), (13, 40)] -> "0:12 13:40"."""
    return " ".join(f"{a}:{b}" for a, b in spans)


def unpack_spans(text: str) -> list[tuple[int, int]]:
    """The inverse of `pack_spans`."""
    return [(int(a), int(b)) for a, b in (pair.split(":") for pair in text.split())]


def pack_vectors(vectors: np.ndarray) -> str:
    """Unit vectors as compact text: per row a float16 scale and int8 values, base64-encoded.

    A chunk's ~7 sentence vectors take ~3.6 kB this way, against ~10 kB as float32; the
    rounding moves a cosine by about 0.002.
    """
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    scale = np.clip(np.abs(vectors).max(axis=1, keepdims=True), 1e-12, None) / 127.0
    codes = np.round(vectors / scale).astype(np.int8)
    rows = np.concatenate([scale.astype(np.float16).view(np.int8), codes], axis=1)
    return base64.b64encode(rows.tobytes()).decode("ascii")


def unpack_vectors(text: str, dim: int) -> np.ndarray:
    """The inverse of `pack_vectors`: float32 rows of length `dim`."""
    rows = np.frombuffer(base64.b64decode(text), dtype=np.int8).reshape(-1, dim + 2)
    scale = rows[:, :2].copy().view(np.float16).astype(np.float32)
    return rows[:, 2:].astype(np.float32) * scale


def article_id(source: str) -> str:
    """A stable Chroma id for an article path."""
    import hashlib

    return hashlib.sha1(source.encode("utf-8")).hexdigest()[:16]


def open_index(
    settings: Settings, embeddings: SentenceEncoder, fingerprint: dict[str, str], *, create: bool
) -> Index:
    """Open the index; with create=False a missing index raises IndexMissingError with the fix.

    `fingerprint` (embedding model, chunking) is stored at creation and must match later.
    """
    from langchain_chroma import Chroma

    from rag.keywords import open_keywords

    if (
        not create
        and not settings.chroma_host
        and not (settings.store_dir / "chroma.sqlite3").exists()
    ):
        raise IndexMissingError(
            f"No index found at {settings.store_dir}. Run `rag ingest` (or `python ingest.py`) first."
        )
    client = make_client(settings)
    where = index_location(settings)
    meta = {"schema": SCHEMA_VERSION, **fingerprint}
    names = {getattr(c, "name", c) for c in client.list_collections()}  # names or objects
    chunk_name = settings.collection
    if not create and chunk_name not in names:
        raise IndexMissingError(
            f"The index {where} has no collection '{chunk_name}'. Run `rag ingest` first"
            + (" with the same RAG_CHROMA_HOST / RAG_CHROMA_PORT." if settings.chroma_host else ".")
        )
    config = {"hnsw": {"space": "cosine"}}
    chunks = Chroma(
        collection_name=chunk_name,
        embedding_function=embeddings,
        client=client,
        collection_metadata=meta,
        collection_configuration=config,  # type: ignore[arg-type]  # a TypedDict
    )
    _check_built_alike(dict(chunks._collection.metadata or {}), meta, settings)
    local = not settings.chroma_host
    return Index(
        chunks=chunks,
        embeddings=embeddings,
        stamp_file=settings.store_dir / STAMP if local else None,
        reopen_with=(lambda: _reopen(settings, embeddings, fingerprint)) if local else None,
        keywords=open_keywords(settings, create=create),
    )


def _check_built_alike(stored: dict[str, Any], meta: dict[str, str], settings: Settings) -> None:
    """IndexMismatchError, with the fix, when the index was built with other settings."""
    where = index_location(settings)
    mismatched = {k: (stored.get(k), v) for k, v in meta.items() if stored.get(k) != v}
    if mismatched:
        detail = ", ".join(
            f"{k}: index has {old!r}, settings say {new!r}" for k, (old, new) in mismatched.items()
        )
        fix = "Rebuild it with `rag ingest --rebuild`."
        if settings.chroma_host:  # shared: rebuilding changes it for every app that uses it
            fix = (
                "Give this app the settings the index was built with (RAG_EMBEDDING_MODEL, "
                "RAG_CHUNK_SIZE, RAG_CHUNK_OVERLAP), or rebuild"
                if "schema" not in mismatched
                else "Rebuild"
            ) + " it with `rag ingest --rebuild`, which changes it for every app that uses it."
        raise IndexMismatchError(
            f"The index {where} was built differently ({detail}). {fix}", frozenset(mismatched)
        )


def _reopen(settings: Settings, embeddings: SentenceEncoder, fingerprint: dict[str, str]) -> Index:
    from chromadb.api.client import SharedSystemClient  # type: ignore[attr-defined]

    # chromadb shares one in-memory system per path; forget it so the new client reads the
    # files afresh (clients already handed out keep working on the old one).
    SharedSystemClient.clear_system_cache()
    return open_index(settings, embeddings, fingerprint, create=False)


def replace_collection(settings: Settings, new_name: str) -> None:
    """Make the collection `new_name` the index named by `settings`, dropping the old one."""
    client = make_client(settings)
    drop_index(settings)
    client.get_collection(new_name).modify(name=settings.collection)
    from rag.keywords import replace_keywords

    replace_keywords(settings, new_name)
    stamp = settings.store_dir / STAMP
    if not settings.chroma_host:
        stamp.touch()
        os.utime(stamp)


def drop_index(settings: Settings) -> None:
    """Delete the collection (used by `rag ingest --rebuild`)."""
    from rag.keywords import drop_keywords

    client = make_client(settings)
    # chromadb raises NotFoundError or ValueError by version; an absent collection is fine
    with contextlib.suppress(Exception):
        client.delete_collection(settings.collection)
    drop_keywords(settings)
