"""The keyword index alone at 6.6k, 100k and 1,000,000 chunks: before (bm25s, built in memory
from every chunk when a server starts) against after (the tantivy index `rag ingest` saves).

    .venv/bin/python bench/keywords.py --store data/eval/chroma [--sizes 6646,100000,1000000]

The chunk texts of an ingested BBC index are replicated to each size (copy N of a chunk gets
its own id and source), as bench/retrieval.py replicates whole records. Each figure comes from
its own child process, so each memory figure is its own:
- before: tokenize and index every chunk with bm25s as the old `KeywordIndex` did (texts
  already in memory: the time to read them from Chroma is not counted), then search;
- after, build: `KeywordStore.rebuild` (what `rag ingest` does once for an older store);
- after, open: open the saved index (what a server start does) and search it;
- after, write: one ingest batch of 40 articles' chunks (`KeywordStore.replace`), as each
  `Index.write` commits it, at that size.
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
from pathlib import Path
from typing import Any

from _common import (
    cpu_load,
    current_rss_mb,
    dev_questions,
    machine,
    offline,
    p50,
    percentile,
    timer,
)

offline()
PAGE = 5000


def replicated(base: list[list[str]], size: int) -> list[tuple[str, str, str]]:
    """`size` (id, source, text) records: the base chunks, then numbered copies of them."""
    out = []
    for i in range(size):
        chunk_id, source, text = base[i % len(base)]
        copy = i // len(base)
        out.append((f"{copy}-{chunk_id}", f"copy{copy:03d}/{source}", text))
    return out


def questions() -> list[str]:
    """The dev set's BBC questions and the conversations' first ones."""
    return dev_questions("bbc-") + dev_questions("conv-")


def time_searches(search: Any, rounds: int = 3) -> dict[str, float]:
    """p50/p95 in ms of `search(question)` over the questions, `rounds` times each."""
    asked, times = questions(), []
    search(asked[0])
    for r in range(rounds):
        random.Random(r).shuffle(asked)
        for q in asked:
            with timer() as t:
                search(q)
            times.append(t[0] * 1000)
    return {"p50_ms": p50(times), "p95_ms": percentile(times, 95)}


def before(base: list[list[str]], size: int) -> dict[str, Any]:
    """Child: the old in-memory bm25s index over `size` chunks."""
    import bm25s

    from rag.keywords import _stem

    records = replicated(base, size)
    texts = [text for _, _, text in records]
    rss0 = current_rss_mb()
    with timer() as build:
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=_stem, show_progress=False)
        bm25 = bm25s.BM25()
        bm25.index(tokens, show_progress=False)
    del texts, tokens
    ids = [chunk_id for chunk_id, _, _ in records]

    def search(q: str) -> list[str]:
        query = bm25s.tokenize([q], stopwords="en", stemmer=_stem, show_progress=False)
        hits, _ = bm25.retrieve(query, k=6, show_progress=False)
        return [ids[i] for i in hits[0]]

    return {"build_s": build[0], "rss_growth_mb": current_rss_mb() - rss0, **time_searches(search)}


def after_build(base: list[list[str]], size: int, path: Path) -> dict[str, Any]:
    """Child: save the tantivy index of `size` chunks at `path` (one rebuild, as ingest does)."""
    from rag.keywords import KeywordStore

    records = replicated(base, size)
    store = KeywordStore(path, create=True)
    with timer() as build:
        store.rebuild(records[i : i + PAGE] for i in range(0, len(records), PAGE))
        store.close()
    disk = sum(f.stat().st_size for f in path.iterdir()) / 2**20
    return {"build_s": build[0], "disk_mb": disk, "count": store.count()}


def after_open(base: list[list[str]], path: Path) -> dict[str, Any]:
    """Child: open the saved index (a server start), search it, then write one ingest batch."""
    from rag.keywords import KeywordStore

    rss0 = current_rss_mb()
    with timer() as opened:
        store = KeywordStore(path)
        store.count()
    searches = time_searches(lambda q: store.search(q, 6))
    rss = current_rss_mb() - rss0
    fresh = [(f"fresh-{i}", f"fresh/{i // 3}.txt", base[i][2]) for i in range(120)]
    with timer() as write:  # 40 articles of 3 chunks: one `Index.write` batch's commit
        store.replace(sorted({s for _, s, _ in fresh}), fresh)
    with timer() as undo:
        store.replace(sorted({s for _, s, _ in fresh}), [])
    store.close()
    return {
        "open_s": opened[0],
        "rss_growth_mb": rss,
        **searches,
        "write_per_article_ms": write[0] * 1000 / 40,
        "delete_per_article_ms": undo[0] * 1000 / 40,
    }


def child(*args: str) -> dict[str, Any]:
    """Run this script with `args` in a child process; the JSON it prints last."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    """Parse options, measure each size, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="an ingested BBC index")
    parser.add_argument("--sizes", default="6646,100000,1000000")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, texts, size, *rest = args.child
        base = json.loads(Path(texts).read_text())
        result = {
            "before": lambda: before(base, int(size)),
            "build": lambda: after_build(base, int(size), Path(rest[0])),
            "open": lambda: after_open(base, Path(rest[0])),
        }[kind]()
        print(json.dumps(result))
        return

    import chromadb

    print(f"machine: {machine()}; load at start: {cpu_load()}", flush=True)
    collection = chromadb.PersistentClient(path=str(args.store)).get_collection("news")
    data = collection.get(include=["documents", "metadatas"])
    base = [
        [i, str(m["source"]), t]
        for i, m, t in zip(data["ids"], data["metadatas"], data["documents"], strict=True)
    ]
    work = Path(tempfile.mkdtemp(prefix="bench-keywords-"))
    try:
        texts = work / "texts.json"
        texts.write_text(json.dumps(base))
        rows = []
        for size in (int(s) for s in args.sizes.split(",")):
            path = work / f"kw-{size}"
            sides = {
                "build": child("build", str(texts), str(size), str(path)),
                "open": child("open", str(texts), str(size), str(path)),
            }
            print(f"{size}: {json.dumps(sides)}; load {cpu_load()}", flush=True)
            shutil.rmtree(path, ignore_errors=True)
            sides["before"] = child("before", str(texts), str(size))
            print(f"{size}: {json.dumps(sides)}; load {cpu_load()}", flush=True)
            rows.append((size, sides))
            shutil.rmtree(path, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\n{'chunks':>9} {'before: build s':>16} {'RSS MiB':>8} {'p50/p95 ms':>12}"
        f" | {'after: open s':>13} {'RSS MiB':>8} {'p50/p95 ms':>12} {'write ms/art':>12}"
        f" {'save once s':>11} {'disk MiB':>9}"
    )
    for size, s in rows:
        b, o, w = s["before"], s["open"], s["build"]
        print(
            f"{size:>9} {b.get('build_s', float('nan')):>16.2f} {b.get('rss_growth_mb', 0):>8.0f} "
            f"{b.get('p50_ms', 0):>5.1f}/{b.get('p95_ms', 0):<6.1f}"
            f" | {o['open_s']:>13.3f} {o['rss_growth_mb']:>8.0f} {o['p50_ms']:>5.1f}/{o['p95_ms']:<6.1f}"
            f" {o['write_per_article_ms']:>12.1f} {w['build_s']:>11.1f} {w['disk_mb']:>9.0f}"
        )
    print(f"load at end: {cpu_load()}; pid {os.getpid()}")


if __name__ == "__main__":
    main()
