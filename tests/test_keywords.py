"""The saved keyword index (tantivy, beside the store): written in step with Chroma by each
ingest, repaired after a killed run, opened (not rebuilt) by readers."""

from __future__ import annotations

import shutil

import pytest

from rag.errors import IndexBusyError
from rag.indexing import ingest
from rag.keywords import PENDING, KeywordIndex, KeywordStore, keyword_path
from rag.pipeline import open_index_for, run_ingest
from tests.conftest import MEDIATION, OFF_RAMP


def chroma_ids(index) -> set[str]:
    return set(index.collection.get(include=[])["ids"])


def test_ingest_saves_the_keyword_index_and_keeps_it_in_step(make_settings, fake_embeddings):
    settings = make_settings()
    index = open_index_for(settings, fake_embeddings, create=True)
    ingest(settings.corpus_dir, index, progress=False)
    path = keyword_path(settings)
    assert path == settings.store_dir / "keywords" / "news" and KeywordStore.exists(path)
    assert index.keywords.ids() == chroma_ids(index)

    # A reader opens the saved index; nothing is rebuilt from the chunks.
    reader = open_index_for(settings, fake_embeddings)
    keywords = KeywordIndex(reader)
    assert keywords.saved
    assert {d.metadata["source"] for d in keywords.search("SAARC", 3)} == {MEDIATION}

    # Edit one article, delete another, add a third: the saved index follows each.
    edited = settings.corpus_dir / OFF_RAMP
    edited.write_text(edited.read_text() + "\nA zeppelin flew over Lahore.\n")
    (settings.corpus_dir / MEDIATION).unlink()
    (settings.corpus_dir / "zebra.txt").write_text("Zebras\n\nThree zebras escaped from Leeds zoo.")
    ingest(settings.corpus_dir, index, progress=False)
    assert index.keywords.ids() == chroma_ids(index)
    keywords.CHECK_EVERY = 0.0
    keywords.follow(open_index_for(settings, fake_embeddings))
    assert keywords.search("SAARC", 3) == []
    assert {d.metadata["source"] for d in keywords.search("zeppelin", 3)} == {OFF_RAMP}
    assert {d.metadata["source"] for d in keywords.search("zebras escaped", 3)} == {"zebra.txt"}


def test_a_run_killed_between_chroma_and_the_keyword_commit_is_repaired(
    make_settings, fake_embeddings, monkeypatch
):
    settings = make_settings()
    index = open_index_for(settings, fake_embeddings, create=True)
    real_replace = KeywordStore.replace

    def dies(self, sources, chunks):
        raise KeyboardInterrupt("killed after Chroma's write")

    monkeypatch.setattr(KeywordStore, "replace", dies)
    with pytest.raises(KeyboardInterrupt):
        ingest(settings.corpus_dir, index, progress=False)
    pending = (keyword_path(settings) / PENDING).read_text()
    assert OFF_RAMP in pending or MEDIATION in pending
    assert index.count_chunks() > 0 and index.keywords.count() == 0  # out of step

    monkeypatch.setattr(KeywordStore, "replace", real_replace)
    index = open_index_for(settings, fake_embeddings, create=True)
    report = ingest(settings.corpus_dir, index, progress=False)
    assert index.keywords.ids() == chroma_ids(index)
    assert not (keyword_path(settings) / PENDING).exists()
    assert report.unchanged == 2  # Chroma had them: repaired from the journal, not re-embedded


def test_a_store_without_a_saved_index_gets_one_at_the_next_ingest(
    make_settings, fake_embeddings, caplog
):
    settings = make_settings()
    index = open_index_for(settings, fake_embeddings, create=True)
    ingest(settings.corpus_dir, index, progress=False)
    shutil.rmtree(keyword_path(settings))  # a store from before the saved index

    # A reader builds one in memory meanwhile, and says how to save it.
    keywords = KeywordIndex(open_index_for(settings, fake_embeddings))
    assert not keywords.saved and "Run `rag ingest`" in caplog.text
    assert {d.metadata["source"] for d in keywords.search("SAARC", 3)} == {MEDIATION}

    index = open_index_for(settings, fake_embeddings, create=True)
    report = ingest(settings.corpus_dir, index, progress=False)
    assert report.unchanged == 2
    assert any("keyword index was rebuilt" in note for note in report.notes)
    assert index.keywords.ids() == chroma_ids(index)


def test_two_writers_of_one_keyword_index_are_refused(tmp_path):
    first, second = KeywordStore(tmp_path / "kw", create=True), KeywordStore(tmp_path / "kw")
    first.replace([], [("a-1", "a.txt", "The dam opened in May.")])
    first.begin(["b.txt"])
    first._writer_or_open()  # a run in progress holds the writer
    with pytest.raises(IndexBusyError, match="another process"):
        second.replace([], [("b-1", "b.txt", "The bridge closed.")])
    first.close()
    second.replace(["b.txt"], [("b-1", "b.txt", "The bridge closed.")])
    assert second.ids() == {"a-1", "b-1"}
    assert second.search("bridge closed", 5) == ["b-1"]


def test_rebuild_swaps_the_keyword_index_with_the_collection(make_settings, embeddings):
    settings = make_settings()
    run_ingest(settings, progress=False)
    before = KeywordStore(keyword_path(settings)).ids()
    run_ingest(settings, rebuild=True, progress=False)
    index = open_index_for(settings, embeddings)
    assert index.keywords is not None and index.keywords.ids() == chroma_ids(index) == before
    assert not keyword_path(settings, "news-rebuild").exists()
