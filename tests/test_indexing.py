"""Stages 4-5: a real Chroma store in a temp dir, the real embedding model, incremental ingest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.errors import CorpusError, IndexMismatchError, IndexMissingError
from rag.indexing import ingest
from rag.pipeline import open_index_for
from tests.conftest import MEDIATION, OFF_RAMP
from tests.conftest import check_consistent as _check_consistent


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


def test_model_files_are_verified(tmp_path, monkeypatch):
    from rag.errors import ModelError
    from rag.llm import packaged as model_files

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
    from rag.llm import packaged as model_files
    from rag.settings import Settings

    path = model_files.ensure_default_model(Settings().model_cache_dir)
    assert path.stat().st_size == model_files.DEFAULT_MODEL_SIZE
    assert path.with_suffix(".verified").read_text().startswith(model_files.DEFAULT_MODEL_SHA256)
    assert isinstance(path, Path)


def test_rebuild_replaces_the_index_only_once_it_is_complete(
    make_settings, embeddings, monkeypatch
):
    from rag import indexing, pipeline

    settings = make_settings()
    first = pipeline.run_ingest(settings, progress=False)
    assert sorted(first.added) == [OFF_RAMP, MEDIATION]

    # A rebuild that dies after writing its first article: the old index still answers.
    real_write = indexing.Index.write

    def dying_write(self, batch):
        real_write(self, batch[:1])
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(indexing.Index, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_ingest(settings, rebuild=True, progress=False)
    monkeypatch.undo()
    index = open_index_for(settings, embeddings)
    assert set(_check_consistent(index)) == {OFF_RAMP, MEDIATION}
    assert index.chunks.similarity_search("SAARC", k=1)

    rebuilt = pipeline.run_ingest(settings, rebuild=True, progress=False)
    assert sorted(rebuilt.added) == [OFF_RAMP, MEDIATION] and rebuilt.unchanged == 0
    index = open_index_for(settings, embeddings)
    assert set(_check_consistent(index)) == {OFF_RAMP, MEDIATION}
    from rag.chroma import make_client

    names = {c if isinstance(c, str) else c.name for c in make_client(settings).list_collections()}
    assert names == {settings.collection}, "the half-built collection is gone"


def test_an_index_made_by_an_older_version_is_rebuilt_by_ingest(make_settings, embeddings):
    from rag import pipeline

    settings = make_settings()
    pipeline.run_ingest(settings, progress=False)
    collection = open_index_for(settings, embeddings).collection
    collection.modify(metadata={**(collection.metadata or {}), "schema": "0"})
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        open_index_for(settings, embeddings)  # what `rag serve` / `rag ask` say meanwhile

    report = pipeline.run_ingest(settings, progress=False)
    assert any("older version" in note for note in report.notes)
    assert sorted(report.added) == [OFF_RAMP, MEDIATION]
    assert set(_check_consistent(open_index_for(settings, embeddings))) == {OFF_RAMP, MEDIATION}
