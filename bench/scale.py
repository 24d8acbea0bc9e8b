"""Scale: server start to ready, its memory, retrieval latency and ingest cost per article at
6.6k, 100k and 1,000,000 chunks, before (BM25 rebuilt in memory from every chunk at start)
and after (the keyword index saved beside the store), in one run.

    .venv/bin/python bench/scale.py --store data/eval/chroma --before /tmp/rag-before \\
        [--sizes 100000,1000000] [--queries 23] [--rounds 3] [--articles 40] [--work /tmp]

`--store` is an ingested BBC index (copied, never written); `--before` a checkout of the code
before the saved index (`git archive c1ab5b8 | tar -x -C /tmp/rag-before`). The large sizes
are replicated as bench/retrieval.py does (perturbed copies of every chunk, vectors included).
Each side runs in its own child process with that side's code on PYTHONPATH: a retrieval
child (build the retriever, time questions), a `rag serve` (seconds to ready, RSS then), an
ingest child (fresh articles written through `Index.write`: read, chunk, embed, Chroma and, after,
the keyword index; then removed again, so the size stays).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import (
    BBC_DIR,
    ROOT,
    copy_articles,
    cpu_load,
    current_rss_mb,
    free_port,
    machine,
    offline,
    p50,
    peak_rss_mb,
    percentile,
    timer,
)

offline()


def child(tree: Path, *args: str) -> dict[str, Any]:
    """Run this script with `args` and `tree`'s code; the JSON it prints last."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, __file__, *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"child {args} failed:\n{done.stdout}\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run_retrieval(store: Path, n_questions: int, rounds: int) -> dict[str, Any]:
    """Child: build the retriever over `store` (the keyword index with it), time questions."""
    from retrieval import questions

    from rag.pipeline import build_retriever
    from rag.settings import Settings

    with timer() as build:
        retriever = build_retriever(Settings(store_dir=store))
    asked = questions(retriever.index, n_questions)
    with timer() as first:
        retriever.retrieve(asked[0])
    times = []
    order = list(range(len(asked)))
    for r in range(rounds):
        random.Random(r).shuffle(order)
        for i in order:
            with timer() as t:
                retriever.retrieve(asked[i])
            times.append(t[0] * 1000)
    return {
        "build_s": build[0],
        "first_ms": first[0] * 1000,
        "p50_ms": p50(times),
        "p95_ms": percentile(times, 95),
        "rss_mb": current_rss_mb(),
        "peak_mb": peak_rss_mb(),
        "chunks": retriever.index.count_chunks(),
    }


def run_ingest(store: Path, corpus: Path) -> dict[str, Any]:
    """Child: write the articles of `corpus` into `store` as `rag ingest` does (256-chunk
    batches through `Index.write`), time it, then remove them again."""
    from rag.chunking import chunk_article
    from rag.embeddings import make_embeddings
    from rag.loading import load_article
    from rag.pipeline import open_index_for
    from rag.settings import Settings

    settings = Settings(store_dir=store, corpus_dir=corpus)
    embeddings = make_embeddings(settings)
    embeddings.encode_with_sentences(["Warm up."], [[(0, 8)]])  # compile the ingest model
    index = open_index_for(settings, embeddings, create=True)
    with timer() as states:
        index.article_states()  # what every ingest run reads first
    files = sorted(corpus.rglob("*.txt"))
    with timer() as run:
        batch: list[Any] = []
        for path in files:
            article = load_article(path, corpus)
            batch.append((article, chunk_article(article, 1000, 200)))
            if sum(len(c) for _, c in batch) >= 256:
                index.write(batch)
                batch = []
        if batch:
            index.write(batch)
    sources = [str(p.relative_to(corpus)) for p in files]
    index.remove(sources)
    if hasattr(index, "close"):
        index.close()
    return {
        "articles": len(files),
        "seconds": run[0],
        "per_article_s": run[0] / len(files),
        "article_states_s": states[0],
    }


def serve_ready(tree: Path, store: Path, work: Path) -> dict[str, Any]:
    """Seconds from `rag serve` to ready on `store`, and its RSS then."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(tree), "RAG_STORE_DIR": str(store)}
    log = (work / "serve.log").open("w")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"rag serve exited:\n{(work / 'serve.log').read_text()}")
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()["status"]
            except httpx.HTTPError:
                status = "down"
            if status == "ready":
                break
            if status == "error":
                raise SystemExit(f"rag serve error:\n{(work / 'serve.log').read_text()}")
            time.sleep(0.1)
        ready = time.perf_counter() - started
        return {"ready_s": ready, "rss_mb": current_rss_mb(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def fresh_articles(dest: Path, n: int, tag: str) -> Path:
    """`n` BBC articles with a line added (new text, so new chunks), under `dest/fresh-<tag>`."""
    corpus = dest / f"corpus-{tag}"
    shutil.rmtree(corpus, ignore_errors=True)
    for path in copy_articles(BBC_DIR, corpus / f"fresh-{tag}", n):
        path.write_text(path.read_text(errors="replace") + f"\nBench edition {tag}.\n")
    return corpus


def grow_to(store: Path, size: int, source: dict[str, list]) -> tuple[float, float, int]:
    """Grow the store to `size` chunks; then bring its saved keyword index in step (what
    `rag ingest` does once for a store made by other means). Seconds for each, chunks."""
    from chromadb.api.client import SharedSystemClient
    from retrieval import grow

    from rag.embeddings import make_embeddings
    from rag.keywords import sync_keywords
    from rag.pipeline import open_index_for
    from rag.settings import Settings

    index = open_index_for(Settings(store_dir=store), make_embeddings(Settings()), create=True)
    seconds = grow(index, source, size, 0.01)
    with timer() as kw:
        sync_keywords(index, index.keywords)
    index.close()
    chunks = index.count_chunks()
    del index
    SharedSystemClient.clear_system_cache()  # let the children have the memory
    return seconds, kw[0], chunks


def measure_size(
    args: argparse.Namespace, store: Path, work: Path, tag: str
) -> dict[str, dict[str, Any]]:
    """Every figure at the store's current size, before and after."""
    sides = {"before": args.before, "after": ROOT}
    out: dict[str, dict[str, Any]] = {}
    corpus = fresh_articles(work, args.articles, tag)
    for name, tree in sides.items():
        qs = [str(args.queries), str(args.rounds)]
        out[name] = {
            "retrieval": child(tree, "--child-retrieval", str(store), *qs),
            "serve": serve_ready(tree, store, work),
            "ingest": child(tree, "--child-ingest", str(store), str(corpus)),
        }
        print(f"  {name}: {json.dumps(out[name])}", flush=True)
    return out


def report(results: list[tuple[int, dict[str, dict[str, Any]]]]) -> None:
    """The scale table: each figure before / after, and the ratio after/before."""
    rows = [
        ("server start to ready, s", "serve", "ready_s"),
        ("server RSS at ready, MiB", "serve", "rss_mb"),
        ("retriever build (keyword index), s", "retrieval", "build_s"),
        ("first question after open, ms", "retrieval", "first_ms"),
        ("retrieval p50, ms", "retrieval", "p50_ms"),
        ("retrieval p95, ms", "retrieval", "p95_ms"),
        ("retrieval process RSS, MiB", "retrieval", "rss_mb"),
        ("ingest, s per article", "ingest", "per_article_s"),
        ("ingest run's article_states(), s", "ingest", "article_states_s"),
    ]
    print(f"\n{'figure':<38}{'chunks':>9}{'before':>11}{'after':>11}{'after/before':>14}")
    for label, part, key in rows:
        for chunks, figures in results:
            a, b = figures["before"][part][key], figures["after"][part][key]
            print(f"{label:<38}{chunks:>9}{a:>11.2f}{b:>11.2f}{b / a if a else 0:>14.2f}")
    base = results[0][1]["after"]
    for chunks, figures in results[1:]:
        after = figures["after"]
        growth = after["serve"]["rss_mb"] - base["serve"]["rss_mb"]
        cost = after["ingest"]["per_article_s"] / base["ingest"]["per_article_s"]
        print(
            f"at {chunks} chunks, after: server RSS growth over the smallest size "
            f"{growth:.0f} MiB; cost per ingested article {cost:.2f}x the smallest size's"
        )


def main() -> None:
    """Parse options; grow the store size by size and measure both sides at each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="an ingested BBC index to copy")
    parser.add_argument("--before", type=Path, help="a checkout of the code before")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=23)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--articles", type=int, default=40, help="articles per ingest figure")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--child-retrieval", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--child-ingest", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_retrieval:
        store, n, rounds = args.child_retrieval
        print(json.dumps(run_retrieval(Path(store), int(n), int(rounds))))
        return
    if args.child_ingest:
        print(json.dumps(run_ingest(Path(args.child_ingest[0]), Path(args.child_ingest[1]))))
        return

    from retrieval import read_all

    from rag.embeddings import make_embeddings
    from rag.pipeline import open_index_for
    from rag.settings import Settings

    print(f"machine: {machine()}; load at start: {cpu_load()}", flush=True)
    started = time.strftime("%H:%M:%S")
    work = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=args.work))
    try:
        store = work / "store"
        shutil.copytree(args.store, store)
        source = read_all(open_index_for(Settings(store_dir=store), make_embeddings(Settings())))
        sizes = [len(source["ids"]), *(int(s) for s in args.sizes.split(","))]
        results = []
        for size in sizes:
            grown, kw, chunks = grow_to(store, size, source)
            print(
                f"{chunks} chunks (grown in {grown:.0f}s; saved keyword index brought in step "
                f"in {kw:.1f}s); load {cpu_load()}",
                flush=True,
            )
            results.append((chunks, measure_size(args, store, work, str(size))))
        report(results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nrun {started}-{time.strftime('%H:%M:%S')}; load at end: {cpu_load()}")


if __name__ == "__main__":
    main()
