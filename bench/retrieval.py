"""Retrieval latency: our Retriever (and its dense step) against a raw Chroma `collection.query`.

Measured at the BBC corpus size and again at ~100k chunks. The large index is made without
re-embedding: the BBC chunks' stored vectors (and their sentences' vectors) are copied with
small random perturbations (re-normalised) and small text changes, and added straight into a Chroma collection opened by
our own store code, in our metadata format.

    .venv/bin/python bench/retrieval.py [--store DIR] [--chunks N] [--queries N] [--rounds N]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    BBC_DIR,
    copy_articles,
    cpu_load,
    dev_questions,
    machine,
    offline,
    p50,
    peak_rss_mb,
    percentile,
    timer,
)

offline()

PAGE = 5000
ADD_BATCH = 4000  # below Chroma's per-call limit, as in rag/store.py


def questions(index: Any, n: int) -> list[str]:
    """The dev set's BBC questions, topped up with questions made from article headlines."""
    asked = dev_questions("bbc-") + dev_questions("conv-")
    heads = index.collection.get(where={"chunk": 0}, include=["metadatas"], limit=PAGE)
    titles = sorted(
        str(m["title"]) for m in heads["metadatas"] if str(m["source"]).startswith("bbc")
    )
    rng = random.Random(0)
    for title in rng.sample(titles, min(len(titles), max(0, n - len(asked)))):
        asked.append(f"What does the report say about {title.rstrip('.').lower()}?")
    return asked[:n]


def open_bbc_index(args: argparse.Namespace, tmp: Path, embeddings: Any) -> tuple[Any, Any]:
    """A BBC-size index: a copy of `--store`, or a fresh ingest of the BBC corpus (slow)."""
    from rag.indexing import ingest
    from rag.pipeline import open_index_for
    from rag.settings import Settings

    store = tmp / "bbc-store"
    if args.store:
        shutil.copytree(args.store, store)
        settings = Settings(store_dir=store)
        return settings, open_index_for(settings, embeddings)
    corpus = tmp / "corpus" / "bbc"
    copy_articles(BBC_DIR, corpus)
    settings = Settings(store_dir=store, corpus_dir=corpus.parent)
    index = open_index_for(settings, embeddings, create=True)
    print("ingesting the BBC corpus (no --store given; this embeds every chunk)...")
    ingest(corpus.parent, index, progress=True)
    return settings, index


def read_all(index: Any) -> dict[str, list]:
    """Every record of the collection, with its stored embedding."""
    out: dict[str, list] = {"ids": [], "documents": [], "metadatas": [], "embeddings": []}
    offset = 0
    while True:
        page = index.collection.get(
            include=["documents", "metadatas", "embeddings"], limit=PAGE, offset=offset
        )
        for key in out:
            out[key].extend(page[key])
        if len(page["ids"]) < PAGE:
            return out
        offset += PAGE


def _swap_words(text: str, rng: random.Random) -> str:
    """Swap two adjacent words: a small edit that keeps the length (and the spans) intact."""
    words = text.split(" ")
    if len(words) < 3:
        return text
    i = rng.randrange(len(words) - 1)
    words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def build_large(
    source: dict[str, list], store: Path, embeddings: Any, target: int, noise: float
) -> tuple[Any, float]:
    """Fill a new index at `store` with perturbed copies of `source` up to `target` chunks."""
    from rag.pipeline import open_index_for
    from rag.settings import Settings

    index = open_index_for(Settings(store_dir=store), embeddings, create=True)
    return index, grow(index, source, target, noise)


def grow(index: Any, source: dict[str, list], target: int, noise: float) -> float:
    """Add perturbed copies of `source` to `index` (copy 0: the originals) until it holds
    `target` chunks; the seconds it took. Each copy is the same whatever size it grows from."""
    from rag.store import article_id, pack_vectors, unpack_vectors

    base = np.asarray(source["embeddings"], dtype=np.float32)
    added = index.count_chunks()
    copy = -(-added // len(base))  # the next copy (sizes are whole copies, or the last one)
    started = time.perf_counter()
    while added < target:
        rng, nrng = random.Random(copy), np.random.default_rng(copy)
        take = min(len(base), target - added)
        if copy == 0:
            vectors, docs = base[:take], source["documents"][:take]
            metas, ids = source["metadatas"][:take], source["ids"][:take]
        else:
            vectors = base[:take] + nrng.normal(0.0, noise, (take, base.shape[1]))
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            docs = [_swap_words(d, rng) for d in source["documents"][:take]]
            metas, ids = [], []
            for meta in source["metadatas"][:take]:
                meta = dict(meta)
                meta["source"] = f"copy{copy:03d}/{meta['source']}"
                meta["title"] = f"{meta['title']} ({copy})"
                meta["sha256"] = hashlib.sha256(f"{meta['sha256']}{copy}".encode()).hexdigest()
                sentences = unpack_vectors(meta["sentence_vectors"], base.shape[1])
                sentences += nrng.normal(0.0, noise, sentences.shape)
                sentences /= np.linalg.norm(sentences, axis=1, keepdims=True)
                meta["sentence_vectors"] = pack_vectors(sentences)
                metas.append(meta)
                ids.append(f"{article_id(meta['source'])}-{meta['sha256'][:12]}-{meta['chunk']}")
        for i in range(0, take, ADD_BATCH):
            index.collection.add(
                ids=ids[i : i + ADD_BATCH],
                documents=docs[i : i + ADD_BATCH],
                metadatas=metas[i : i + ADD_BATCH],
                embeddings=np.asarray(vectors[i : i + ADD_BATCH]).tolist(),
            )
        added += take
        copy += 1
    return time.perf_counter() - started


def measure(
    settings: Any, index: Any, embeddings: Any, asked: list[str], rounds: int
) -> dict[str, Any]:
    """Time every step on every question, interleaved so contention hits all steps alike."""
    from rag.keywords import KeywordIndex
    from rag.pipeline import make_retriever

    if index.keywords is not None:  # records added straight to Chroma: save their words too
        from rag.keywords import sync_keywords

        sync_keywords(index, index.keywords)
    with timer() as kw_build:  # the saved index is opened; without one, it is built here
        keyword_index = KeywordIndex(index)
    retriever = make_retriever(settings, index, embeddings, keyword_index)
    k = settings.top_k
    vectors = [embeddings.embed_query(q) for q in asked]

    def raw(i: int) -> Any:
        return index.collection.query(
            query_embeddings=[vectors[i]],
            n_results=k,
            include=["documents", "metadatas", "distances"],
        )

    steps: dict[str, Callable[[int], Any]] = {
        "raw chroma query (precomputed vec)": raw,
        "our dense search (precomputed vec)": lambda i: (
            index.chunks.similarity_search_by_vector_with_relevance_scores(vectors[i], k=k)
        ),
        "our dense step (embed + search)": lambda i: (
            index.chunks.similarity_search_by_vector_with_relevance_scores(
                embeddings.embed_query(asked[i]), k=k
            )
        ),
        "query embedding alone": lambda i: embeddings.embed_query(asked[i]),
        "BM25 search alone": lambda i: keyword_index.search(asked[i], k),
        "our Retriever.retrieve": lambda i: retriever.retrieve(asked[i]),
    }
    for step in steps.values():  # warm up
        step(0)
    same = 0
    for i in range(len(asked)):
        ours = index.chunks.similarity_search_by_vector_with_relevance_scores(vectors[i], k=k)
        theirs = raw(i)["documents"][0]
        same += [d.page_content for d, _ in ours] == theirs
    times: dict[str, list[float]] = {name: [] for name in steps}
    names, rng = list(steps), random.Random(2)
    for _ in range(rounds):
        for i in range(len(asked)):
            # A fresh order each time: a step run right after an embedding shares the CPU with
            # torch's still-spinning worker threads, so no step may always follow one.
            rng.shuffle(names)
            for name in names:
                with timer() as t:
                    steps[name](i)
                times[name].append(t[0] * 1000)
    return {
        "chunks": index.count_chunks(),
        "keyword_build_s": kw_build[0],
        "times": times,
        "same_hits": same,
    }


def report(label: str, result: dict[str, Any], n_questions: int) -> None:
    """Print p50/p95 per step and the ratio of each of ours to the raw query."""
    times = result["times"]
    raw = times["raw chroma query (precomputed vec)"]
    raw50, raw95 = p50(raw), percentile(raw, 95)
    print(
        f"\n== {label}: {result['chunks']} chunks, {n_questions} questions x "
        f"{len(raw) // n_questions} rounds; BM25 index built in "
        f"{result['keyword_build_s']:.1f}s; dense hits identical to raw on "
        f"{result['same_hits']}/{n_questions} questions"
    )
    print(f"{'step':<36}{'p50 ms':>9}{'p95 ms':>9}{'p50/raw':>9}{'p95/raw':>9}")
    for name, values in times.items():
        a, b = p50(values), percentile(values, 95)
        print(f"{name:<36}{a:>9.1f}{b:>9.1f}{a / raw50:>9.2f}{b / raw95:>9.2f}")


def main() -> None:
    """Parse options, measure at the BBC size and at `--chunks`, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="an ingested BBC index to copy (default: build)")
    parser.add_argument("--chunks", type=int, default=100_000, help="size of the large index")
    parser.add_argument("--queries", type=int, default=30, help="number of questions")
    parser.add_argument("--rounds", type=int, default=3, help="times each question is asked")
    parser.add_argument("--noise", type=float, default=0.01, help="per-dimension noise sigma")
    args = parser.parse_args()

    from rag.embeddings import make_embeddings
    from rag.settings import Settings

    print(f"machine: {machine()}; load at start: {cpu_load()}")
    started = time.strftime("%H:%M:%S")
    embeddings = make_embeddings(Settings())
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp_name:
        tmp = Path(tmp_name)
        settings, index = open_bbc_index(args, tmp, embeddings)
        asked = questions(index, args.queries)
        small = measure(settings, index, embeddings, asked, args.rounds)
        report("BBC size", small, len(asked))
        print(f"load now: {cpu_load()}; peak RSS {peak_rss_mb():.0f} MiB")

        if args.chunks > small["chunks"]:
            source = read_all(index)
            large, seconds = build_large(
                source, tmp / "large-store", embeddings, args.chunks, args.noise
            )
            del source
            print(
                f"\nlarge index: {large.count_chunks()} chunks added with precomputed vectors "
                f"in {seconds:.1f}s ({large.count_chunks() / seconds:.0f} chunks/s)"
            )
            big = measure(settings, large, embeddings, asked, args.rounds)
            report(f"~{args.chunks // 1000}k chunks", big, len(asked))
    print(f"\nrun {started}-{time.strftime('%H:%M:%S')}; load at end: {cpu_load()}")
    print(f"peak RSS {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
