"""Stage 5, indexing: bring the index in line with the corpus folder, incrementally."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.chunking import chunk_article
from rag.errors import ArticleError, CorpusError
from rag.extract import TRAFILATURA
from rag.keywords import sync_keywords
from rag.loading import load_article, printable, scan_corpus, source_name
from rag.schema import Article, Chunk
from rag.store import Index, folders_of
from rag.stories import StoryReport, regroup


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
    pages: dict[str, str] = field(default_factory=dict)  # web page written -> its extractor
    undated_pages: int = 0
    stories: StoryReport | None = None  # the near-duplicate groups after the run

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
        if self.stories is not None and self.stories.groups:
            lines.append(f"  {self.stories.line()}")
        if self.pages:
            lines.append(self.pages_line())
        return "\n".join(lines)

    def count_page(self, source: str, metadata: dict[str, str]) -> None:
        """Note a web page (metadata naming its extractor) written this run."""
        if "extractor" in metadata:
            self.pages[source] = metadata["extractor"]
            self.undated_pages += not metadata.get("date")

    def pages_line(self) -> str:
        """Web pages written this run: extracted, fallen back (naming a few), undated."""
        fell = {s: e for s, e in self.pages.items() if e != TRAFILATURA}
        named = ", ".join(f"{s} ({e})" for s, e in list(fell.items())[:5])
        more = f", and {len(fell) - 5} more" if len(fell) > 5 else ""
        return (
            f"Web pages: {len(self.pages) - len(fell)} extracted, {len(fell)} fell back to a "
            f"simpler extractor{': ' + named + more if fell else ''}; "
            f"{self.undated_pages} undated."
        )


@dataclass(frozen=True)
class IngestOptions:
    """How articles are read and cut (from the settings)."""

    chunk_size: int = 1000
    chunk_overlap: int = 200
    max_bytes: int = 20 * 2**20
    batch_chunks: int = 256
    links: str = "skip"  # symbolic links: "skip", or "inside" (see rag.loading.load_article)


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
    """Add new and changed articles, drop deleted ones, skip unchanged ones by content hash;
    the saved keyword index is brought in step first (after a killed run) and kept in step."""
    started = time.perf_counter()
    files, unlisted = scan_corpus(corpus_dir)
    if not files:
        raise _nothing_to_ingest(corpus_dir, unlisted)
    report = IngestReport()
    options = IngestOptions(chunk_size, chunk_overlap, max_bytes, batch_chunks, links)
    try:
        if index.keywords is not None and (note := sync_keywords(index, index.keywords)):
            report.notes.append(note)
        _ingest_files(corpus_dir, _progress(files, progress), unlisted, index, options, report)
    finally:
        index.close()  # the keyword index's writer is released for the next run
    report.seconds = time.perf_counter() - started
    return report


def _ingest_files(
    corpus_dir: Path,
    files: Iterable[Path],
    unlisted: list[tuple[str, str]],
    index: Index,
    options: IngestOptions,
    report: IngestReport,
) -> None:
    stored = index.article_states()
    present = _keep_unlisted(unlisted, stored, report)
    first_seen: dict[str, str] = {}  # sha256 -> source, to catch the same article twice
    pending: list[tuple[Article, list[Chunk]]] = []

    def flush() -> None:
        if pending:
            index.write(pending)
            report.chunks_written += sum(len(chunks) for _, chunks in pending)
            pending.clear()

    for path in files:
        source = source_name(path, corpus_dir)
        present.add(source)
        article = _read(path, corpus_dir, options.max_bytes, report, options.links)
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
            chunks = chunk_article(article, options.chunk_size, options.chunk_overlap)
        except Exception as exc:
            report.skipped.append((source, _unexpected(source, exc)))
            continue
        (report.updated if old else report.added).append(source)
        report.count_page(source, article.metadata)
        report.notes += article.notes
        pending.append((article, chunks))
        if sum(len(chunks) for _, chunks in pending) >= options.batch_chunks:
            flush()
    flush()
    report.removed = sorted(s for s in stored if s not in present)
    index.remove(report.removed)
    _add_folders(index, {s: m for s, m in stored.items() if s in present}, report)
    report.stories = regroup(index)


def _add_folders(index: Index, stored: dict[str, dict[str, Any]], report: IngestReport) -> None:
    """Give articles indexed before folders were stored their folders (for folder filters)."""
    missing = {s: {"folders": folders_of(s)} for s, m in stored.items() if "folders" not in m}
    if missing:
        index.update_metadata(missing)
        report.notes.append(f"Folders recorded for {len(missing)} articles indexed before.")


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
