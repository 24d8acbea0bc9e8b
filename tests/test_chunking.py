"""Stage 2: sentence splitting and chunking keep exact character spans."""

from __future__ import annotations

import hashlib

from rag.chunking import chunk_article, split_sentences
from rag.loading import load_corpus
from rag.schema import Article
from tests.conftest import CORPUS


def _article(text: str) -> Article:
    return Article("a.txt", "A", text, hashlib.sha256(text.encode()).hexdigest())


def test_sentences_respect_abbreviations_and_quotes():
    text = 'Mr. Smith went to the U.S. on Monday. He said "No." Then he left! Was it No. 10? Yes.'
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "Mr. Smith went to the U.S. on Monday.",
        'He said "No."',
        "Then he left!",
        "Was it No. 10?",
        "Yes.",
    ]


def test_line_breaks_end_sentences():
    text = "Headline here\n\nFirst sentence. Second one.\nAspect | Description |"
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "Headline here",
        "First sentence.",
        "Second one.",
        "Aspect | Description |",
    ]


def test_chunks_cover_article_with_overlap_and_exact_spans():
    for article in load_corpus(CORPUS):
        chunks = chunk_article(article, size=600, overlap=150)
        assert len(chunks) > 1
        for chunk in chunks:
            assert article.text[chunk.start : chunk.end] == chunk.text
            assert len(chunk.text) <= 600
        for prev, nxt in zip(chunks, chunks[1:], strict=False):
            assert nxt.start < prev.end, "consecutive chunks overlap"
            assert nxt.start > prev.start
        covered = "".join(article.text[c.start : c.end] for c in chunks)
        assert all(s in covered for s in article.text.split(". ")[:3])
        assert chunks[-1].end == len(article.text.rstrip())


def test_overlong_sentence_is_cut_at_words():
    text = "word " * 500 + "end."
    chunks = chunk_article(_article(text), size=300, overlap=50)
    assert all(len(c.text) <= 300 for c in chunks)
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert chunks[-1].text.endswith("end.")
