"""Ingest throughput: our `ingest` into a fresh Chroma against raw SentenceTransformer.encode.

Four sides, each in its own child process (so each peak RSS is its own), on the same articles:
- ours, `RAG_EMBEDDING_BACKEND=torch`: sentence-transformers on torch, fp32;
- ours, `RAG_EMBEDDING_BACKEND=onnx` (the default): the int8 ONNX model;
- raw: `SentenceTransformer.encode` of the very same chunk texts, fp32, same batch size;
- our int8 embedding stage alone (`rag.store.embed_chunks`) on those texts, without a store.
Ours does everything an ingest does: read, hash, chunk, embed chunks *and* pool their
sentences' vectors, write to Chroma. Raw only encodes.

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


def run_ours(corpus: Path, store: Path, batch_size: int, backend: str) -> dict:
    """Ingest `corpus` into a new store at `store`; return timings and the chunk texts."""
    from rag.embeddings import make_embeddings
    from rag.indexing import ingest
    from rag.pipeline import open_index_for
    from rag.settings import Settings

    settings = Settings(
        corpus_dir=corpus,
        store_dir=store,
        embedding_batch_size=batch_size,
        embedding_backend=backend,
    )
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


def run_embed_only(texts_file: Path, batch_size: int) -> dict:
    """Our embedding stage alone (chunk vectors and sentence vectors, int8 ONNX), no store: how
    much of the ingest is the encoder, and how much the rest (reading, chunking, Chroma)."""
    from rag.embeddings import make_embeddings
    from rag.settings import Settings
    from rag.store import embed_chunks

    texts = json.loads(texts_file.read_text())
    with timer() as load:
        encoder = make_embeddings(Settings(embedding_batch_size=batch_size))
        encoder.embed_query("warm up")
    with timer() as run:
        vectors, _ = embed_chunks(encoder, texts)
    return {
        "model_load_s": load[0],
        "seconds": run[0],
        "chunks": len(vectors),
        "peak_rss_mb": peak_rss_mb(),
    }


def chunk_rate(side: dict) -> float:
    """Chunks per second of one side's result."""
    return side["chunks"] / side["seconds"]


def child(*args: str) -> dict:
    """Run this script in a child process with `args`; return the JSON it prints last."""
    done = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Parse options, run the three sides, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="articles (default: all 2,225)")
    parser.add_argument("--batch-size", type=int, default=32, help="embedding batch size")
    parser.add_argument("--keep-store", type=Path, default=None, help="keep the ONNX index here")
    parser.add_argument("--raw-texts", type=Path, help=argparse.SUPPRESS)  # child: raw side
    parser.add_argument("--ours", nargs=3, help=argparse.SUPPRESS)  # child: backend corpus store
    parser.add_argument("--embed-texts", type=Path, help=argparse.SUPPRESS)  # child: encoder only
    args = parser.parse_args()
    batch = ["--batch-size", str(args.batch_size)]

    if args.raw_texts:
        print(json.dumps(run_raw(args.raw_texts, args.batch_size)))
        return
    if args.embed_texts:
        print(json.dumps(run_embed_only(args.embed_texts, args.batch_size)))
        return
    if args.ours:
        backend, corpus, store = args.ours
        result = run_ours(Path(corpus), Path(store), args.batch_size, backend)
        Path(store, "texts.json").write_text(json.dumps(result.pop("texts")))
        print(json.dumps(result))
        return

    print(f"machine: {machine()}; load at start: {cpu_load()}")
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        corpus = Path(tmp) / "bbc"
        copy_articles(BBC_DIR, corpus, args.limit)
        started = time.strftime("%H:%M:%S")
        sides = {}
        for backend in ("onnx", "torch"):
            store = (
                args.keep_store if backend == "onnx" and args.keep_store else Path(tmp) / backend
            )
            sides[backend] = child("--ours", backend, str(corpus), str(store), *batch)
        sides["raw"] = child("--raw-texts", str(store / "texts.json"), *batch)
        sides["encoder"] = child("--embed-texts", str(store / "texts.json"), *batch)
    print(f"run {started}-{time.strftime('%H:%M:%S')}; load at end: {cpu_load()}")
    ours = sides["onnx"]
    print(
        f"{ours['articles']} articles, {ours['chunks']} chunks ({ours['skipped']} skipped), "
        f"batch size {args.batch_size}"
    )
    for name, side in sides.items():
        print(f"{name:<8} {side['seconds']:.1f}s (model load {side['model_load_s']:.1f}s)")
    raw = sides["raw"]
    for backend in ("torch", "onnx"):
        side = sides[backend]
        print(f"-- ours ({backend}) against raw fp32 SentenceTransformer.encode")
        print(row("chunks/s", chunk_rate(side), chunk_rate(raw), "chunks/s"))
        print(
            row(
                "articles/s",
                side["articles"] / side["seconds"],
                ours["articles"] / raw["seconds"],  # same articles, their chunks encoded raw
                "art/s",
            )
        )
        print(row("peak RSS (whole process)", side["peak_rss_mb"], raw["peak_rss_mb"], "MiB"))
    encoder, onnx = sides["encoder"], sides["onnx"]
    print("-- our int8 ONNX embedding stage alone (no reading, chunking or store) against raw")
    print(row("chunks/s", chunk_rate(encoder), chunk_rate(raw), "chunks/s"))
    print(
        f"share of the int8 ingest spent outside the encoder: "
        f"{1 - encoder['seconds'] / onnx['seconds']:.0%}"
    )
    if args.keep_store:
        print(f"ONNX index kept at {args.keep_store}")


if __name__ == "__main__":
    main()
