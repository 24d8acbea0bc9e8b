"""Filters (date range, outlet, folder): checked once, applied inside both searches."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import QuestionError
from rag.indexing import ingest
from rag.keywords import KeywordIndex
from rag.pipeline import open_index_for
from rag.questions import Filters, Query
from rag.retrieval import Retriever
from rag.settings import Settings

ARTICLES = {  # source: (date, outlet, body): three reports on one bridge
    "wire/march/bridge.md": (
        "2025-03-02",
        "Coastal Wire",
        "The harbour bridge in Port Elling was closed on Sunday after inspectors found cracks.",
    ),
    "post/bridge-april.md": (
        "2025-04-10",
        "Daily Post",
        "Repairs to the cracked harbour bridge will keep it shut until June, engineers said.",
    ),
    "post/old/bridge.md": (
        "",
        "Daily Post",
        "Ferry crossings doubled while the harbour bridge stayed closed for repairs.",
    ),
}


def write_corpus(corpus: Path) -> None:
    for source, (date, outlet, body) in ARTICLES.items():
        path = corpus / source
        path.parent.mkdir(parents=True, exist_ok=True)
        dated = f"date: {date}\n" if date else ""
        path.write_text(f"---\n{dated}outlet: {outlet}\n---\n# Bridge\n\n{body}\n")


def test_filters_are_checked_with_clear_errors():
    assert not Filters.parse(None) and not Filters.parse({})
    f = Filters.parse({"date_from": "2025-03-01", "outlet": "BBC News", "folder": ["bbc/tech/"]})
    assert f.where() == {
        "$and": [
            {"date_int": {"$gte": 20250301}},
            {"outlet": {"$in": ["BBC News"]}},
            {"folders": {"$contains": "bbc/tech"}},
        ]
    }
    assert Query.parse("Why?", filters={"date_to": "2025-01-31"}).filters.date_to == 20250131
    for bad, says in [
        ({"date_from": "2025-02-30"}, "YYYY-MM-DD"),
        ({"date_from": "1 March"}, "YYYY-MM-DD"),
        ({"date_from": "2025-04-01", "date_to": "2025-03-01"}, "after"),
        ({"since": "2025-04-01"}, "Unknown filter since"),
        ({"outlet": [3]}, "list of names"),
        (["bbc"], "must be an object"),
    ]:
        with pytest.raises(QuestionError, match=says):
            Query.parse("Why?", filters=bad)


def test_filters_narrow_dense_and_keyword_search(tmp_path, embeddings):
    settings = Settings(corpus_dir=tmp_path / "corpus", store_dir=tmp_path / "chroma")
    write_corpus(settings.corpus_dir)
    index = open_index_for(settings, embeddings, create=True)
    ingest(settings.corpus_dir, index, progress=False)
    retriever = Retriever(
        index,
        embeddings,
        keyword_index=KeywordIndex(index),
        min_relevance=0.0,
        relative_relevance=0.0,
    )
    question = "Why was the harbour bridge closed?"

    def sources(**raw: object) -> set[str]:
        found = retriever.retrieve(question, 20, Filters.parse(raw))
        return {e.source for e in found}

    assert sources() == set(ARTICLES)
    assert sources(folder="post") == {"post/bridge-april.md", "post/old/bridge.md"}
    assert sources(folder="post/old") == {"post/old/bridge.md"}
    assert sources(outlet="Coastal Wire") == {"wire/march/bridge.md"}
    assert sources(date_from="2025-03-03") == {"post/bridge-april.md"}  # undated left out
    assert sources(date_to="2025-03-02", outlet="Daily Post") == set()
    # The keyword half alone honours the filter too.
    where = Filters.parse({"folder": "wire"}).where()
    hits = KeywordIndex(index).search("harbour bridge cracks", 5, where=where)
    assert hits and {d.metadata["source"] for d in hits} == {"wire/march/bridge.md"}


def test_an_index_without_folders_says_to_ingest_and_ingest_adds_them(tmp_path, embeddings):
    settings = Settings(corpus_dir=tmp_path / "corpus", store_dir=tmp_path / "chroma")
    write_corpus(settings.corpus_dir)
    index = open_index_for(settings, embeddings, create=True)
    ingest(settings.corpus_dir, index, progress=False)
    old = index.collection.get(include=[])["ids"]  # as built before folders were stored
    index.collection.update(ids=old, metadatas=[{"folders": None}] * len(old))
    retriever = Retriever(index, embeddings, min_relevance=0.0, relative_relevance=0.0)
    with pytest.raises(QuestionError, match="Run `rag ingest` once"):
        retriever.retrieve("Why was the bridge closed?", filters=Filters.parse({"folder": "post"}))
    report = ingest(settings.corpus_dir, index, progress=False)
    assert "Folders recorded for 3 articles" in report.summary()
    found = retriever.retrieve(
        "Why was the bridge closed?", filters=Filters.parse({"folder": "wire"})
    )
    assert {e.source for e in found} == {"wire/march/bridge.md"}


def test_rag_ask_checks_its_filter_flags_before_loading_models(tmp_path):
    from typer.testing import CliRunner

    from rag.cli import app

    args = ["ask", "--store", str(tmp_path), "--from", "2025-04-01", "--to", "2025-03-01", "Why?"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "is after date_to" in result.output
