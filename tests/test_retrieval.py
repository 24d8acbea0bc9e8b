"""Stage 6: hybrid retrieval over stored sentence vectors, kept in step with the store."""

from __future__ import annotations

import time

from rag.indexing import ingest
from rag.keywords import KeywordIndex
from rag.pipeline import open_index_for
from rag.retrieval import Retriever
from tests.conftest import MEDIATION, OFF_RAMP, run_rag


class CountingEmbeddings:
    """Wraps the real encoder and counts the texts it is asked to embed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.texts = 0

    def embed_query(self, text):
        self.texts += 1
        return self.inner.embed_query(text)

    def embed_documents(self, texts):
        self.texts += len(texts)
        return self.inner.embed_documents(texts)

    def encode(self, texts):
        self.texts += len(texts)
        return self.inner.encode(texts)


def test_a_question_costs_one_embedding(seed_index, embeddings):
    counting = CountingEmbeddings(embeddings)
    retriever = Retriever(seed_index, counting, keyword_index=KeywordIndex(seed_index))
    evidence = retriever.retrieve("What does SAARC stand for?")
    assert counting.texts == 1  # the question; the sentences' vectors come from the index
    assert any("South Asian Association" in e.text and e.source == MEDIATION for e in evidence)
    for e in evidence:
        assert seed_index.article(e.source)[1][e.start : e.end] == e.text


def test_evidence_keeps_each_article_together_best_first(seed_index, embeddings):
    retriever = Retriever(seed_index, embeddings, keyword_index=KeywordIndex(seed_index))
    for question in ("What does SAARC stand for?", "Why did India and Pakistan clash?"):
        evidence = retriever.retrieve(question)
        sources = [e.source for e in evidence]
        runs = [s for i, s in enumerate(sources) if i == 0 or s != sources[i - 1]]
        assert len(runs) == len(set(runs)), f"an article's passages are split: {sources}"
        assert evidence[0].score == max(e.score for e in evidence)
        assert [e.n for e in evidence] == list(range(1, len(evidence) + 1))


def test_passages_far_below_the_best_match_are_left_out(seed_index, embeddings):
    question = "How many Indian soldiers were killed in the suicide bombing in Kashmir?"
    keywords = KeywordIndex(seed_index)
    # (without the best match's neighbour sentence, which joins below the floor by design)
    every = Retriever(
        seed_index, embeddings, relative_relevance=0.0, keyword_index=keywords, neighbours=False
    )
    close = Retriever(seed_index, embeddings, keyword_index=keywords, neighbours=False)
    wide, narrow = every.retrieve(question), close.retrieve(question)
    assert len(narrow) < len(wide) == 5
    best = max(e.score for e in wide)
    assert all(e.score >= 0.7 * best for e in narrow)
    assert {e.text for e in narrow} == {e.text for e in wide if e.score >= 0.7 * best}
    assert any("killed 40 Indian soldiers" in e.text for e in narrow)
    assert [e.n for e in narrow] == list(range(1, len(narrow) + 1))


def test_keyword_search_follows_the_store(make_settings, embeddings):
    settings = make_settings()
    index = open_index_for(settings, embeddings, create=True)
    ingest(settings.corpus_dir, index, progress=False)
    keywords = KeywordIndex(index)
    keywords.CHECK_EVERY = 0.0
    assert {d.metadata["source"] for d in keywords.search("SAARC", 3)} == {MEDIATION}

    # Another process deletes an article and adds one: a deleted chunk is never returned...
    (settings.corpus_dir / MEDIATION).unlink()
    (settings.corpus_dir / "zebra.txt").write_text(
        "Zebras escape from zoo\n\nThree zebras escaped from Leeds zoo on Monday, keepers said."
    )
    ingest(settings.corpus_dir, index, progress=False)
    assert keywords.search("SAARC", 3) == []
    # ...and the keyword index is rebuilt in the background to find the new one.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = {d.metadata["source"] for d in keywords.search("zebras escaped", 3)}
        if found:
            break
        time.sleep(0.2)
    assert found == {"zebra.txt"}
    assert OFF_RAMP in {d.metadata["source"] for d in keywords.search("dogfight", 3)}


def test_a_reader_sees_what_another_process_ingested(make_settings, embeddings, monkeypatch):
    from rag import retrieval

    monkeypatch.setattr(retrieval, "STORE_CHECK_EVERY", 0.0)
    settings = make_settings()
    index = open_index_for(settings, embeddings, create=True)
    ingest(settings.corpus_dir, index, progress=False)
    retriever = Retriever(index, embeddings, keyword_index=KeywordIndex(index))
    assert retriever.retrieve("What does SAARC stand for?")  # the reader is warm

    # `rag ingest` in another process (as an admin would, with `rag serve` running).
    (settings.corpus_dir / MEDIATION).unlink()
    (settings.corpus_dir / "zebra.txt").write_text(
        "Zebras escape from zoo\n\nThree zebras escaped from Leeds zoo on Monday, keepers said."
    )
    env = {"RAG_CORPUS_DIR": str(settings.corpus_dir), "RAG_STORE_DIR": str(settings.store_dir)}
    done = run_rag("ingest", "--quiet", env=env)
    assert done.returncode == 0, done.stderr

    evidence = retriever.retrieve("How many zebras escaped from the zoo?")
    assert evidence and evidence[0].source == "zebra.txt"
    assert any("Three zebras" in e.text for e in evidence if e.source == "zebra.txt")
    assert all(e.source != MEDIATION for e in retriever.retrieve("What does SAARC stand for?"))


def test_the_best_matchs_next_sentence_joins_the_evidence_below_the_floor(seed_index, embeddings):
    question = "How many Indian soldiers were killed in the suicide bombing in Kashmir?"
    keywords = KeywordIndex(seed_index)
    alone = Retriever(seed_index, embeddings, keyword_index=keywords, neighbours=False)
    with_next = Retriever(seed_index, embeddings, keyword_index=keywords).retrieve(question)
    extra = {e.text for e in with_next} - {e.text for e in alone.retrieve(question)}
    assert len(extra) == 1
    best = max(with_next, key=lambda e: e.score)
    _, text = seed_index.article(best.source)
    assert text.index(best.text) < text.index(extra.pop())  # it follows the best match
