"""Stage 6, retrieval: find the chunks near the question, then keep only the sentences that matter.

Prompt length is the main latency lever of a small local model (about 30 prompt tokens/s on two
cores), so the LLM is shown a few numbered sentences, not whole chunks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from rag.chunking import split_sentences
from rag.schema import Evidence
from rag.store import Index


def _stem(words: list[str]) -> list[str]:
    # A crude prefix stemmer: "mediate"/"mediation", "president"/"presidential" meet.
    # (bm25s calls it on the whole vocabulary at once.)
    return [word[:6] for word in words]


class KeywordIndex:
    """BM25 over every chunk in the index (bm25s), to catch exact words dense search misses."""

    def __init__(self, index: Index) -> None:
        import bm25s

        self._bm25s = bm25s
        self.docs: list[Document] = []
        offset, page_size = 0, 5000
        while True:
            page = index.collection.get(
                include=["documents", "metadatas"], limit=page_size, offset=offset
            )
            for text, meta in zip(page["documents"], page["metadatas"], strict=True):
                meta = {k: v for k, v in meta.items() if k != "article_text"}
                self.docs.append(Document(page_content=text, metadata=meta))
            if len(page["ids"]) < page_size:
                break
            offset += page_size
        self.bm25 = bm25s.BM25()
        if self.docs:
            tokens = self._tokenize([d.page_content for d in self.docs])
            self.bm25.index(tokens, show_progress=False)

    def _tokenize(self, texts: list[str]):
        return self._bm25s.tokenize(texts, stopwords="en", stemmer=_stem, show_progress=False)

    def search(self, query: str, k: int) -> list[Document]:
        """The `k` best chunks for `query` by BM25 (fewer if fewer match at all)."""
        if not self.docs:
            return []
        ids, scores = self.bm25.retrieve(
            self._tokenize([query]), k=min(k, len(self.docs)), show_progress=False
        )
        return [self.docs[i] for i, score in zip(ids[0], scores[0], strict=True) if score > 0]


def _key(doc: Document) -> tuple[str, int]:
    return str(doc.metadata["source"]), int(doc.metadata["chunk"])


def fuse(
    dense: list[tuple[Document, float]], keyword: list[Document], k: int
) -> list[tuple[Document, float]]:
    """Reciprocal rank fusion of dense hits (doc, cosine distance) and BM25 hits, best first.

    Each result keeps a dense similarity; a keyword-only hit gets the weakest dense one seen.
    """
    rrf: dict[tuple[str, int], float] = {}
    docs: dict[tuple[str, int], Document] = {}
    similarity: dict[tuple[str, int], float] = {}
    for rank, (doc, distance) in enumerate(dense):
        key = _key(doc)
        docs[key], similarity[key] = doc, 1.0 - float(distance)
        rrf[key] = rrf.get(key, 0.0) + 1.0 / (60 + rank)
    for rank, doc in enumerate(keyword):
        key = _key(doc)
        docs.setdefault(key, doc)
        rrf[key] = rrf.get(key, 0.0) + 1.0 / (60 + rank)
    floor = min(similarity.values(), default=0.0)
    best = sorted(rrf, key=lambda key: -rrf[key])[:k]
    return [(docs[key], 1.0 - similarity.get(key, floor)) for key in best]


_WORD = re.compile(r"[a-z0-9]{3,}")
_STOP = frozenset(
    "the and for are was were what which who whom whose when "
    "where why how did does has have had with that this these "
    "those from into about between their there they them his her its "
    "can could would should will not but all any one two also "
    "than then after before".split()
)


def keyword_overlap(question: str, sentences: list[str]) -> np.ndarray:
    """Share of the question's rarer words each sentence contains, IDF-weighted over `sentences`.

    Words every candidate shares ("India", "Pakistan") weigh little; "mediate" weighs a lot.
    """
    terms = {w[:6] for w in _WORD.findall(question.lower()) if w not in _STOP}
    if not terms or not sentences:
        return np.zeros(len(sentences))
    bags = [{w[:6] for w in _WORD.findall(s.lower())} for s in sentences]
    n = len(bags)
    weight = {t: math.log(1 + n / (1 + sum(t in bag for bag in bags))) for t in terms}
    total = sum(weight.values())
    return np.asarray([sum(weight[t] for t in terms if t in bag) / total for bag in bags])


@dataclass(frozen=True)
class _Sentence:
    source: str
    title: str
    start: int
    end: int
    text: str
    context: str  # the previous sentence + this one: what gets embedded
    chunk_score: float


NEAR_DUPLICATE = 0.95  # cosine above which two evidence sentences count as one


class Retriever:
    """Question -> a short list of numbered evidence passages, best first."""

    def __init__(
        self,
        index: Index,
        embeddings: Embeddings,
        *,
        top_k: int = 6,
        max_sentences: int = 5,
        max_chars: int = 1400,
        min_relevance: float = 0.30,
        keyword_index: KeywordIndex | None = None,
    ) -> None:
        self.index = index
        self.keyword_index = keyword_index
        self.embeddings = embeddings
        self.top_k = top_k
        self.max_sentences = max_sentences
        self.max_chars = max_chars
        self.min_relevance = min_relevance

    def __call__(self, question: str) -> list[Evidence]:
        """Alias of `retrieve`, so a Retriever can be used as a chain step."""
        return self.retrieve(question)

    def retrieve(self, question: str) -> list[Evidence]:
        """Return up to `max_sentences` evidence passages with relevance >= `min_relevance`."""
        query = np.asarray(self.embeddings.embed_query(question))
        hits = self.index.chunks.similarity_search_by_vector_with_relevance_scores(
            query.tolist(), k=self.top_k
        )
        if self.keyword_index is not None:
            hits = fuse(hits, self.keyword_index.search(question, self.top_k), self.top_k)
        sentences = self._sentences(hits)
        if not sentences:
            return []
        # A sentence is scored with the one before it (pronouns, "the wars" need it), blended
        # with its chunk's score. On our seed questions this put 8 of 10 key sentences in the
        # top 5, against 6 of 10 for the bare sentence (docs/quality.md).
        vectors = np.asarray(self.embeddings.embed_documents([s.context for s in sentences]))
        scores = (
            0.6 * (vectors @ query)
            + 0.2 * np.asarray([s.chunk_score for s in sentences])
            + 0.2 * keyword_overlap(question, [s.text for s in sentences])
        )
        ranked = sorted(range(len(sentences)), key=lambda i: -scores[i])
        chosen: list[tuple[_Sentence, float]] = []
        picked: list[int] = []
        used = 0
        for i in ranked:
            if scores[i] < self.min_relevance or len(chosen) >= self.max_sentences:
                break
            sentence = sentences[i]
            if used + len(sentence.text) > self.max_chars and chosen:
                continue
            if any(vectors[i] @ vectors[j] >= NEAR_DUPLICATE for j in picked):
                continue  # the same sentence, lightly edited, in another article or version
            chosen.append((sentence, float(scores[i])))
            picked.append(i)
            used += len(sentence.text)
        return [
            Evidence(n, s.source, s.title, s.start, s.end, s.text, round(score, 4))
            for n, (s, score) in enumerate(chosen, start=1)
        ]

    def _sentences(self, hits) -> list[_Sentence]:
        """Split the hit chunks into sentences with article-level spans, without duplicates."""
        seen: set[tuple[str, int]] = set()
        seen_text: set[str] = set()
        out: list[_Sentence] = []
        for doc, distance in hits:
            meta = doc.metadata
            base = int(meta["start"])
            spans = split_sentences(doc.page_content)
            for j, (start, end) in enumerate(spans):
                text = doc.page_content[start:end]
                previous = doc.page_content[spans[j - 1][0] : spans[j - 1][1]] if j else ""
                key = (str(meta["source"]), base + start)
                norm = " ".join(text.lower().split())
                if key in seen or norm in seen_text or len(norm) < 12:
                    continue  # overlap between chunks, repeated boilerplate, or a fragment
                seen.add(key)
                seen_text.add(norm)
                out.append(
                    _Sentence(
                        str(meta["source"]),
                        str(meta["title"]),
                        base + start,
                        base + end,
                        text,
                        f"{previous} {text}".strip(),
                        1.0 - float(distance),
                    )
                )
        return out
