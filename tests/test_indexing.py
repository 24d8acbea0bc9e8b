"""Stages 4-5: a real Chroma store in a temp dir, the real embedding model, incremental ingest."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from rag.errors import CorpusError, IndexMismatchError, IndexMissingError
from rag.indexing import ingest
from rag.pipeline import open_index_for
from tests.conftest import BBC, MEDIATION, OFF_RAMP, ROOT


def _check_consistent(index) -> dict:
    """No orphan, partial or duplicate chunks: every article is whole, or absent."""
    data = index.collection.get(include=["metadatas"])
    assert len(data["ids"]) == len(set(data["ids"]))
    per_source = Counter(m["source"] for m in data["metadatas"])
    states = index.article_states()
    assert set(per_source) == set(states), "chunks without their article record"
    for source, meta in states.items():
        assert per_source[source] == meta["n_chunks"], f"{source} is partial"
        shas = {m["sha256"] for m in data["metadatas"] if m["source"] == source}
        assert shas == {meta["sha256"]}, f"{source} mixes versions"
    return states


def test_ingest_is_incremental(make_settings, embeddings):
    settings = make_settings()
    index = open_index_for(settings, embeddings, create=True)
    first = ingest(settings.corpus_dir, index, progress=False)
    assert sorted(first.added) == [OFF_RAMP, MEDIATION]
    assert first.chunks_written == index.count_chunks() > 10
    title, text = index.article(OFF_RAMP)
    assert text == (settings.corpus_dir / OFF_RAMP).read_text()
    assert title.startswith("India and Pakistan May Have an Off-Ramp")

    again = ingest(settings.corpus_dir, index, progress=False)
    assert (again.unchanged, again.added, again.updated, again.chunks_written) == (2, [], [], 0)

    path = settings.corpus_dir / OFF_RAMP
    path.write_text(
        path.read_text().replace("killed 40 Indian soldiers", "killed 41 Indian soldiers")
    )
    (settings.corpus_dir / MEDIATION).unlink()
    (settings.corpus_dir / "new.md").write_text("# Dam opens\n\nThe dam opened on 3 May.\n")
    changed = ingest(settings.corpus_dir, index, progress=False)
    assert changed.updated == [OFF_RAMP]
    assert changed.removed == [MEDIATION]
    assert changed.added == ["new.md"]
    states = _check_consistent(index)
    assert set(states) == {OFF_RAMP, "new.md"}
    assert "41 Indian soldiers" in index.article(OFF_RAMP)[1]
    assert "Dam opens" in changed.summary() or "1 added" in changed.summary()


def test_duplicates_and_bad_files_are_reported_not_fatal(make_settings, embeddings):
    settings = make_settings()
    shutil.copy(settings.corpus_dir / OFF_RAMP, settings.corpus_dir / "copy-of-off-ramp.txt")
    (settings.corpus_dir / "empty.txt").write_text("")
    index = open_index_for(settings, embeddings, create=True)
    report = ingest(settings.corpus_dir, index, progress=False)
    reasons = dict(report.skipped)
    assert "same text as" in reasons[OFF_RAMP] or "same text as" in reasons["copy-of-off-ramp.txt"]
    assert "holds no text" in reasons["empty.txt"]
    assert len(report.added) == 2
    _check_consistent(index)


def test_unreadable_file_keeps_its_indexed_version(make_settings, embeddings):
    settings = make_settings()
    index = open_index_for(settings, embeddings, create=True)
    ingest(settings.corpus_dir, index, progress=False)
    path = settings.corpus_dir / OFF_RAMP
    path.write_bytes(b"\x00\x01binary now")  # unreadable as an article
    report = ingest(settings.corpus_dir, index, progress=False)
    assert report.skipped and report.skipped[0][0] == OFF_RAMP
    assert report.removed == []
    assert OFF_RAMP in index.article_states(), "a bad read must not delete the indexed article"


def test_empty_corpus_leaves_index_untouched(make_settings, embeddings):
    settings = make_settings()
    index = open_index_for(settings, embeddings, create=True)
    ingest(settings.corpus_dir, index, progress=False)
    for f in settings.corpus_dir.iterdir():
        f.unlink()
    with pytest.raises(CorpusError, match="No articles"):
        ingest(settings.corpus_dir, index, progress=False)
    assert len(index.article_states()) == 2


def test_missing_index_and_mismatched_index_say_how_to_fix(make_settings, embeddings):
    settings = make_settings()
    with pytest.raises(IndexMissingError, match="rag ingest"):
        open_index_for(settings, embeddings)
    open_index_for(settings, embeddings, create=True)
    other = make_settings(chunk_size=500)
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        open_index_for(other, embeddings)


def test_killed_ingest_leaves_usable_store_and_next_run_completes(tmp_path, embeddings):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    files = sorted((BBC / "business").glob("*.txt"))[:200]
    for f in files:
        shutil.copy(f, corpus / f.name)
    store = tmp_path / "chroma"
    env = {**os.environ, "RAG_STORE_DIR": str(store), "RAG_CORPUS_DIR": str(corpus)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "ingest"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    seen = b""
    try:
        while proc.poll() is None:
            seen += proc.stderr.read1(4096)
            if re.search(rb"Ingesting:\s+([2-9]\d)%", seen):  # well under way, not finished
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the ingest finished before it could be killed"

    from rag.settings import Settings

    settings = Settings(store_dir=store, corpus_dir=corpus)
    index = open_index_for(settings, embeddings)
    states = _check_consistent(index)
    assert 0 < len(states) < len(files)
    hits = index.chunks.similarity_search("oil prices", k=3)  # the store answers queries
    assert hits

    report = ingest(corpus, index, progress=False)
    assert report.unchanged == len(states)
    assert len(report.added) == len(files) - len(states)
    assert len(_check_consistent(index)) == len(files)


def test_model_files_are_verified(tmp_path, monkeypatch):
    from rag import model_files
    from rag.errors import ModelError

    parts = []
    for i in range(3):
        part = tmp_path / f"part{i}.bin"
        part.write_bytes(bytes([i]) * 10)
        parts.append(part)
    monkeypatch.setattr(model_files, "part_paths", lambda: parts)
    with pytest.raises(ModelError, match="corrupt"):
        model_files.ensure_default_model(tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir()), "no half-written model is left behind"


def test_default_model_is_assembled_and_verified():
    from rag import model_files
    from rag.settings import Settings

    path = model_files.ensure_default_model(Settings().model_cache_dir)
    assert path.stat().st_size == model_files.DEFAULT_MODEL_SIZE
    assert path.with_suffix(".verified").read_text().startswith(model_files.DEFAULT_MODEL_SHA256)
    assert isinstance(path, Path)
