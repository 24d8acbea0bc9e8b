"""Ingest throughput: our `ingest` into a fresh Chroma against raw SentenceTransformer.encode.

Sides, each in its own child process (so each peak RSS is its own), on the same articles:
- ours, `RAG_EMBEDDING_BACKEND=openvino` (the default): OpenVINO, bfloat16 where the CPU has it;
- ours, `RAG_EMBEDDING_BACKEND=onnx`: the int8 ONNX model on onnxruntime;
- ours, `RAG_EMBEDDING_BACKEND=torch`: sentence-transformers on torch, fp32;
- raw: `SentenceTransformer.encode` of the very same chunk texts, fp32, same batch size;
- with `--stage-alone BACKEND`: that backend's embedding stage alone (`rag.store.embed_chunks`)
  on those texts, without reading, chunking or a store.
Ours does everything an ingest does: read, hash, chunk, embed chunks *and* pool their
sentences' vectors, write to Chroma. Raw only encodes.

    .venv/bin/python bench/ingest.py [--limit N] [--backends openvino,onnx,torch]
                                     [--stage-alone openvino] [--keep-store DIR]
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


def run_embed_only(texts_file: Path, batch_size: int, backend: str) -> dict:
    """Our embedding stage alone (chunk vectors and sentence vectors), no store: how much of
    the ingest is the encoder, and how much the rest (reading, chunking, Chroma)."""
    from rag.embeddings import make_embeddings
    from rag.settings import Settings
    from rag.store import embed_chunks

    texts = json.loads(texts_file.read_text())
    with timer() as load:
        encoder = make_embeddings(
            Settings(embedding_batch_size=batch_size, embedding_backend=backend)
        )
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
    """Parse options, run the sides, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="articles (default: all 2,225)")
    parser.add_argument("--batch-size", type=int, default=32, help="embedding batch size")
    parser.add_argument(
        "--backends",
        default="openvino,onnx,torch",
        help="our embedding backends to run, comma-separated (the first one's chunks go to raw)",
    )
    parser.add_argument(
        "--stage-alone",
        default="",
        help="also time this backend's embedding stage alone, without reading or a store",
    )
    parser.add_argument("--keep-store", type=Path, default=None, help="keep the first index here")
    parser.add_argument("--raw-texts", type=Path, help=argparse.SUPPRESS)  # child: raw side
    parser.add_argument("--ours", nargs=3, help=argparse.SUPPRESS)  # child: backend corpus store
    parser.add_argument("--embed-texts", nargs=2, help=argparse.SUPPRESS)  # child: backend texts
    args = parser.parse_args()
    batch = ["--batch-size", str(args.batch_size)]

    if args.raw_texts:
        print(json.dumps(run_raw(args.raw_texts, args.batch_size)))
        return
    if args.embed_texts:
        backend, texts = args.embed_texts
        print(json.dumps(run_embed_only(Path(texts), args.batch_size, backend)))
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
        backends = args.backends.split(",")
        for backend in backends:
            first = backend == backends[0]
            store = args.keep_store if first and args.keep_store else Path(tmp) / backend
            sides[backend] = child("--ours", backend, str(corpus), str(store), *batch)
        texts = (args.keep_store or Path(tmp) / backends[0]) / "texts.json"
        sides["raw"] = child("--raw-texts", str(texts), *batch)
        if args.stage_alone:
            sides["stage"] = child("--embed-texts", args.stage_alone, str(texts), *batch)
    print(f"run {started}-{time.strftime('%H:%M:%S')}; load at end: {cpu_load()}")
    ours = sides[backends[0]]
    print(
        f"{ours['articles']} articles, {ours['chunks']} chunks ({ours['skipped']} skipped), "
        f"batch size {args.batch_size}"
    )
    for name, side in sides.items():
        print(f"{name:<9} {side['seconds']:.1f}s (model load {side['model_load_s']:.1f}s)")
    raw = sides["raw"]
    for backend in backends:
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
    if args.stage_alone:
        stage, whole = sides["stage"], sides.get(args.stage_alone)
        print(f"-- our {args.stage_alone} embedding stage alone (no reading, chunking or store)")
        print(row("chunks/s", chunk_rate(stage), chunk_rate(raw), "chunks/s"))
        if whole:
            share = 1 - stage["seconds"] / whole["seconds"]
            print(f"share of the {args.stage_alone} ingest spent outside the encoder: {share:.0%}")
    if args.keep_store:
        print(f"{backends[0]} index kept at {args.keep_store}")


if __name__ == "__main__":
    main()
