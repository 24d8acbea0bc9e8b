"""Stage 5, indexing: bring the index in line with the corpus folder, incrementally."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from rag.chunking import chunk_article
from rag.errors import ArticleError, CorpusError
from rag.loading import iter_corpus_files, load_article, source_name
from rag.schema import Article, Chunk
from rag.store import Index


@dataclass
class IngestReport:
    """What an ingest run did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    chunks_written: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [
            f"Ingested in {self.seconds:.1f}s: {len(self.added)} added, {len(self.updated)} updated, "
            f"{len(self.removed)} removed, {self.unchanged} unchanged, {len(self.skipped)} skipped "
            f"({self.chunks_written} chunks written)."
        ]
        lines += [f"  skipped {reason}" for _, reason in self.skipped]
        return "\n".join(lines)


def ingest(
    corpus_dir: Path,
    index: Index,
    *,
    chunk_size: int = 1000,
    chunk_overlap: int = 200,
    max_bytes: int = 20 * 2**20,
    batch_chunks: int = 256,
    progress: bool = True,
) -> IngestReport:
    """Add new and changed articles, drop deleted ones, skip unchanged ones by content hash."""
    started = time.perf_counter()
    files = iter_corpus_files(corpus_dir)
    if not files:
        raise CorpusError(
            f"No articles in {corpus_dir}. Put .txt, .md, .html or .pdf files there and run "
            "`rag ingest` again. (The existing index, if any, was left as it is.)"
        )
    report = IngestReport()
    stored = index.article_states()
    present: set[str] = set()
    first_seen: dict[str, str] = {}  # sha256 -> source, to catch the same article twice
    pending: list[tuple[Article, list[Chunk]]] = []

    def flush() -> None:
        if pending:
            index.write(pending)
            report.chunks_written += sum(len(chunks) for _, chunks in pending)
            pending.clear()

    for path in _progress(files, enabled=progress):
        source = source_name(path, corpus_dir)
        present.add(source)
        try:
            article = load_article(path, corpus_dir, max_bytes)
        except ArticleError as exc:
            # Keep what the index already holds for it: a passing read error must lose nothing.
            report.skipped.append((source, str(exc)))
            continue
        if article.sha256 in first_seen:
            report.skipped.append(
                (source, f"{source}: same text as {first_seen[article.sha256]}; indexed once.")
            )
            present.discard(source)  # so an older copy under this name is removed below
            continue
        first_seen[article.sha256] = source
        old = stored.get(source)
        if old and old.get("sha256") == article.sha256:
            report.unchanged += 1
            continue
        (report.updated if old else report.added).append(source)
        pending.append((article, chunk_article(article, chunk_size, chunk_overlap)))
        if sum(len(chunks) for _, chunks in pending) >= batch_chunks:
            flush()
    flush()
    report.removed = sorted(s for s in stored if s not in present)
    index.remove(report.removed)
    report.seconds = time.perf_counter() - started
    return report


def _progress(files: list[Path], enabled: bool):
    if not enabled or len(files) < 50:
        return files
    from tqdm import tqdm

    return tqdm(files, unit="article", desc="Ingesting")
