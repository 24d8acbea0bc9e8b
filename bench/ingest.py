"""Ingest throughput: our `ingest` into a fresh Chroma against raw SentenceTransformer.encode.

Both sides embed the very same chunk texts with the same batch size. The raw side runs in a
child process, so each side's peak RSS is its own.

    .venv/bin/python bench/ingest.py [--limit N] [--keep-store DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    BBC_DIR,
    copy_articles,
    cpu_load,
    machine,
    offline,
    peak_rss_mb,
    row,
    timer,
)

offline()


def run_ours(corpus: Path, store: Path, batch_size: int) -> dict:
    """Ingest `corpus` into a new store at `store`; return timings and the chunk texts."""
    from rag.embeddings import make_embeddings
    from rag.indexing import ingest
    from rag.pipeline import open_index_for
    from rag.settings import Settings

    settings = Settings(corpus_dir=corpus, store_dir=store, embedding_batch_size=batch_size)
    with timer() as load:
        embeddings = make_embeddings(settings)
        embeddings.embed_query("warm up")
    index = open_index_for(settings, embeddings, create=True)
    with timer() as run:
        report = ingest(
            corpus,
            index,
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
            progress=False,
        )
    texts = index.collection.get(include=["documents"])["documents"]
    return {
        "model_load_s": load[0],
        "seconds": run[0],
        "articles": len(report.added),
        "chunks": report.chunks_written,
        "skipped": len(report.skipped),
        "texts": texts,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_raw(texts_file: Path, batch_size: int) -> dict:
    """Encode the texts in `texts_file` with a bare SentenceTransformer (child process side)."""
    from sentence_transformers import SentenceTransformer

    from rag.embeddings import default_embedding_path

    texts = json.loads(texts_file.read_text())
    with timer() as load:
        model = SentenceTransformer(str(default_embedding_path()), device="cpu")
        model.encode(["warm up"], normalize_embeddings=True)
    with timer() as run:
        vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    return {
        "model_load_s": load[0],
        "seconds": run[0],
        "chunks": len(vectors),
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    """Parse options, run both sides, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="articles (default: all 2,225)")
    parser.add_argument("--batch-size", type=int, default=64, help="embedding batch size")
    parser.add_argument("--keep-store", type=Path, default=None, help="keep the index here")
    parser.add_argument("--raw-texts", type=Path, help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args()

    if args.raw_texts:
        print(json.dumps(run_raw(args.raw_texts, args.batch_size)))
        return

    print(f"machine: {machine()}; load at start: {cpu_load()}")
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        corpus = Path(tmp) / "bbc"
        copy_articles(BBC_DIR, corpus, args.limit)
        store = args.keep_store or Path(tmp) / "chroma"
        started = time.strftime("%H:%M:%S")
        ours = run_ours(corpus, store, args.batch_size)
        texts_file = Path(tmp) / "texts.json"
        texts_file.write_text(json.dumps(ours.pop("texts")))
        child = subprocess.run(
            [sys.executable, __file__, "--raw-texts", str(texts_file)]
            + ["--batch-size", str(args.batch_size)],
            check=True,
            capture_output=True,
            text=True,
        )
        raw = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"run {started}-{time.strftime('%H:%M:%S')}; load at end: {cpu_load()}")
    print(
        f"{ours['articles']} articles, {ours['chunks']} chunks ({ours['skipped']} skipped), "
        f"batch size {args.batch_size}"
    )
    print(f"ours: ingest {ours['seconds']:.1f}s (model load {ours['model_load_s']:.1f}s)")
    print(f"raw:  encode {raw['seconds']:.1f}s (model load {raw['model_load_s']:.1f}s)")
    ours_cps, raw_cps = ours["chunks"] / ours["seconds"], raw["chunks"] / raw["seconds"]
    ours_aps = ours["articles"] / ours["seconds"]
    raw_aps = ours["articles"] / raw["seconds"]  # same articles, their chunks encoded raw
    print(row("chunks/s", ours_cps, raw_cps, "chunks/s"))
    print(row("articles/s", ours_aps, raw_aps, "art/s"))
    print(row("peak RSS (whole process)", ours["peak_rss_mb"], raw["peak_rss_mb"], "MiB"))
    if args.keep_store:
        print(f"index kept at {args.keep_store}")


if __name__ == "__main__":
    main()
