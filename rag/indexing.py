"""Stage 5, indexing: bring the index in line with the corpus folder, incrementally."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.chunking import chunk_article
from rag.errors import ArticleError, CorpusError
from rag.loading import load_article, printable, scan_corpus, source_name
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
    notes: list[str] = field(default_factory=list)  # things the admin should know

    @property
    def indexed(self) -> int:
        """How many of the corpus's articles the index holds after the run."""
        return len(self.added) + len(self.updated) + self.unchanged

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [
            f"Ingested in {self.seconds:.1f}s: {len(self.added)} added, {len(self.updated)} updated, "
            f"{len(self.removed)} removed, {self.unchanged} unchanged, {len(self.skipped)} skipped "
            f"({self.chunks_written} chunks written)."
        ]
        lines += [f"  skipped {reason}" for _, reason in self.skipped]
        lines += [f"  {note}" for note in self.notes]
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
    links: str = "skip",
) -> IngestReport:
    """Add new and changed articles, drop deleted ones, skip unchanged ones by content hash."""
    started = time.perf_counter()
    files, unlisted = scan_corpus(corpus_dir)
    if not files:
        raise _nothing_to_ingest(corpus_dir, unlisted)
    report = IngestReport()
    stored = index.article_states()
    present = _keep_unlisted(unlisted, stored, report)
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
        article = _read(path, corpus_dir, max_bytes, report, links)
        if article is None:
            continue  # skipped: what the index holds for it is kept
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
        try:
            chunks = chunk_article(article, chunk_size, chunk_overlap)
        except Exception as exc:
            report.skipped.append((source, _unexpected(source, exc)))
            continue
        (report.updated if old else report.added).append(source)
        report.notes += article.notes
        pending.append((article, chunks))
        if sum(len(chunks) for _, chunks in pending) >= batch_chunks:
            flush()
    flush()
    report.removed = sorted(s for s in stored if s not in present)
    index.remove(report.removed)
    report.seconds = time.perf_counter() - started
    return report


def _nothing_to_ingest(corpus_dir: Path, unlisted: list[tuple[str, str]]) -> CorpusError:
    if unlisted:
        folders = "; ".join(f"{folder}/ ({reason})" for folder, reason in unlisted)
        return CorpusError(
            f"No articles could be listed in {corpus_dir}: {folders}. Give the user running "
            "`rag ingest` read access to those folders (chmod a+rx). "
            "(The existing index, if any, was left as it is.)"
        )
    return CorpusError(
        f"No articles in {corpus_dir}. Put .txt, .md, .html or .pdf files there and run "
        "`rag ingest` again. (The existing index, if any, was left as it is.)"
    )


def _keep_unlisted(
    unlisted: list[tuple[str, str]], stored: dict[str, dict[str, Any]], report: IngestReport
) -> set[str]:
    """The indexed articles of folders that could not be listed: their files are unknown this
    run, so what the index holds for them is kept (and reported)."""
    present: set[str] = set()
    for folder, reason in unlisted:
        kept = [s for s in stored if s.startswith(f"{folder}/")]
        present.update(kept)
        report.skipped.append(
            (
                f"{folder}/",
                f"{folder}/: the folder cannot be listed ({reason}); its {len(kept)} indexed "
                "articles were kept. Give the user running `rag ingest` read access (chmod a+rx).",
            )
        )
    return present


def _read(
    path: Path, corpus_dir: Path, max_bytes: int, report: IngestReport, links: str
) -> Article | None:
    """The article, or None with the reason in the report (a passing read error loses nothing)."""
    source = source_name(path, corpus_dir)
    try:
        return load_article(path, corpus_dir, max_bytes, links)
    except ArticleError as exc:
        report.skipped.append((printable(source), str(exc)))
    except Exception as exc:  # a parser failing on a hostile file must not stop the run
        report.skipped.append((printable(source), _unexpected(source, exc)))
    return None


def _unexpected(source: str, exc: Exception) -> str:
    return (
        f"{printable(source)}: could not be read ({type(exc).__name__}: {exc}). "
        "Re-save the file in another format or remove it."
    )


def _progress(files: list[Path], enabled: bool) -> Iterable[Path]:
    if not enabled or len(files) < 50:
        return files
    from tqdm import tqdm

    bar: Iterable[Path] = tqdm(files, unit="article", desc="Ingesting")
    return bar
