"""Faults around the ingester: files that cannot be read (a real permission error), vanish or
turn bad between runs; a corpus that is missing, empty or unreadable; and the real `rag ingest`
killed with SIGKILL at random points, again and again. Whatever happens the store opens,
answers and holds only whole articles (no orphan, partial, duplicate or mixed-version chunks),
and nothing indexed is lost to a fault."""

from __future__ import annotations

import hashlib
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.chunking import chunk_article
from rag.errors import IndexMissingError
from rag.indexing import ingest
from rag.loading import load_article
from rag.pipeline import open_index_for
from rag.settings import Settings
from tests.conftest import BBC, check_consistent, child_env, run_rag
from tests.test_bad_input import GOOD, GOOD_TEXT, NOISE, make_index, store_env

pytestmark = pytest.mark.models  # real `rag` processes, real models

SEED = 20240611
KILLS = 10
ARTICLES = 150  # ~470 chunks: one uninterrupted run takes ~10-40 s here, by CPU load


# ---- files that fail under the ingester: unreadable, vanishing, turning bad -----------------


def test_an_article_that_turns_bad_keeps_its_indexed_version(tmp_path, embeddings, monkeypatch):
    corpus, index = make_index(tmp_path, embeddings)
    names = ["binary.txt", "huge.txt", "link.txt", "pipe.txt", "locked.txt", "crash.html"]
    for i, name in enumerate(names):
        (corpus / name).write_text(f"Story {i}\n\nThe council met on day {i} and voted.\n")
    ingest(corpus, index, progress=False)
    before = check_consistent(index)
    (corpus / "binary.txt").write_bytes(NOISE)
    (corpus / "huge.txt").write_bytes(b"word " * 30_000)
    (corpus / "link.txt").unlink()
    (corpus / "link.txt").symlink_to(tmp_path / "unmounted" / "link.txt")
    (corpus / "pipe.txt").unlink()
    os.mkfifo(corpus / "pipe.txt")
    (corpus / "crash.html").write_text("<p>Changed.</p>")

    # Simulated (tests run as root, which reads any file): the OS refuses to open locked.txt,
    # and the HTML parser fails on crash.html with an error the loader does not expect.
    real_open, locked = os.open, str(corpus / "locked.txt")

    def refusing_open(path, *args, **kwargs):
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_open(path, *args, **kwargs)

    def crashing_parser(html, path):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(os, "open", refusing_open)
    monkeypatch.setattr("rag.loading.parse_page", crashing_parser)
    report = ingest(corpus, index, progress=False, max_bytes=int(0.1 * 2**20))
    reasons = dict(report.skipped)
    assert sorted(reasons) == sorted(names) and report.removed == []
    assert (
        "permission denied). Give the user running `rag ingest` read access"
        in reasons["locked.txt"]
    )
    assert "could not be read (RecursionError: maximum recursion" in reasons["crash.html"]
    assert check_consistent(index) == before, "a file that cannot be read must lose nothing"


def test_a_file_deleted_during_the_run_is_reported_and_removed_next_time(
    tmp_path, embeddings, monkeypatch
):
    import rag.indexing

    corpus, index = make_index(tmp_path, embeddings)
    for name in ("a.txt", "b.txt", "c.txt"):
        (corpus / name).write_text(f"Story {name}\n\nThe council of {name} met and voted.\n")
    ingest(corpus, index, progress=False)
    real_load = rag.indexing.load_article

    def load_after_deleting_b(path, *args):  # b.txt vanishes between listing and reading
        if path.name == "a.txt":
            (corpus / "b.txt").unlink()
        return real_load(path, *args)

    monkeypatch.setattr(rag.indexing, "load_article", load_after_deleting_b)
    report = ingest(corpus, index, progress=False)
    assert report.skipped == [
        (
            "b.txt",
            "b.txt: was deleted or moved while it was being ingested. Run `rag ingest` again.",
        )
    ]
    assert set(check_consistent(index)) == {"a.txt", "b.txt", "c.txt"}  # kept for this run
    assert ingest(corpus, index, progress=False).removed == ["b.txt"]
    assert set(check_consistent(index)) == {"a.txt", "c.txt"}


def test_cli_ingest_reports_unreadable_files_and_folders_and_keeps_them(tmp_path, embeddings):
    assert shutil.which("setpriv"), "util-linux setpriv is needed to drop root's read-all power"
    corpus, index = make_index(tmp_path, embeddings)
    (corpus / GOOD).write_text(GOOD_TEXT)
    (corpus / "keep.txt").write_text("Pier closes\n\nThe pier closed for repairs on Friday.\n")
    (corpus / "sub").mkdir()
    (corpus / "sub" / "inner.txt").write_text("Zoo adds pandas\n\nTwo pandas arrived.\n")
    ingest(corpus, index, progress=False)
    index.chunks._client.close()  # the subprocess writes next
    (corpus / "keep.txt").chmod(0)
    (corpus / "sub").chmod(0)
    (corpus / "empty.txt").write_text("")
    (corpus / "noise.txt").write_bytes(NOISE)
    (corpus / "huge.txt").write_bytes(b"word " * 30_000)
    (corpus / "new.txt").write_text("Bus fares fall\n\nFares fell by 5% on Monday.\n")
    env = {**store_env(corpus, tmp_path), "RAG_MAX_FILE_MB": "0.1"}
    result = run_rag("ingest", "--quiet", env=env, unprivileged=True)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "1 added, 0 updated, 0 removed, 1 unchanged, 5 skipped" in out, out
    for line in [
        "skipped keep.txt: cannot be read (permission denied). Give the user running `rag "
        "ingest` read access to it (chmod a+r).",
        "skipped sub/: the folder cannot be listed (Permission denied); its 1 indexed articles "
        "were kept. Give the user running `rag ingest` read access (chmod a+rx).",
        "skipped empty.txt: holds no text. Add the article's text or remove the file.",
        "skipped noise.txt: looks like a binary file, not text.",
        "skipped huge.txt: 0.143 MB is over the 0.1 MB limit. Split it or raise RAG_MAX_FILE_MB.",
    ]:
        assert line in out, out
    assert "Traceback" not in result.stderr
    _, index = make_index(tmp_path, embeddings)
    assert set(check_consistent(index)) == {GOOD, "keep.txt", "sub/inner.txt", "new.txt"}


def _prepare(case: str, tmp_path: Path, embeddings) -> tuple[Path, dict[str, str], bool]:
    corpus = tmp_path / "corpus"
    if case == "missing corpus":
        return corpus, {}, False
    if case == "corpus is a file":
        corpus.write_text("not a folder")
        return corpus, {}, False
    corpus, index = make_index(tmp_path, embeddings)
    if case == "empty corpus, index kept":
        (corpus / GOOD).write_text(GOOD_TEXT)
        ingest(corpus, index, progress=False)
        (corpus / GOOD).unlink()
    elif case == "every file bad":
        (corpus / "empty.txt").write_text("")
        (corpus / "noise.txt").write_bytes(NOISE)
    elif case == "unreadable corpus":
        (corpus / GOOD).write_text(GOOD_TEXT)
        corpus.chmod(0)
    elif case == "invalid setting":
        return corpus, {"RAG_MAX_FILE_MB": "-1"}, False
    index.chunks._client.close()
    return corpus, {}, case == "unreadable corpus"


NOTHING_TO_DO = {
    "missing corpus": r"Corpus folder .*corpus does not exist\. Create it and put articles",
    "corpus is a file": r"corpus is not a folder\. Set RAG_CORPUS_DIR to a folder of articles",
    "empty corpus, index kept": r"No articles in .*\. Put \.txt, .* files there and run "
    r"`rag ingest` again\. \(The existing index, if any, was left as it is\.\)",
    "every file bad": r"Nothing could be ingested: all 2 files were skipped \(reasons above\)\. "
    r"Fix or replace them",
    "unreadable corpus": r"Corpus folder .* cannot be read \(Permission denied\)\. Give the user "
    r"running `rag ingest` read access to it",
    "invalid setting": r"Invalid setting \(RAG_MAX_FILE_MB: Input should be greater than 0\)\. "
    r"Fix the environment variable or the \.env file\.",
}


@pytest.mark.parametrize("case", NOTHING_TO_DO)
def test_cli_ingest_exits_1_with_a_message_when_nothing_can_be_done(case, tmp_path, embeddings):
    corpus, env, unprivileged = _prepare(case, tmp_path, embeddings)
    result = run_rag(
        "ingest", "--quiet", env={**store_env(corpus, tmp_path), **env}, unprivileged=unprivileged
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert re.search(NOTHING_TO_DO[case], " ".join(result.stderr.split())), result.stderr
    assert "Traceback" not in result.stderr
    if case == "every file bad":
        assert "skipped noise.txt: looks like a binary file" in result.stdout
    if case == "empty corpus, index kept":
        _, index = make_index(tmp_path, embeddings)
        assert set(check_consistent(index)) == {GOOD}


# ---- the ingester killed ------------------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy_bbc(corpus: Path, n: int) -> None:
    """`n` BBC articles from all five topics, named topic-NNN.txt."""
    topics = sorted(p for p in BBC.iterdir() if p.is_dir())
    per_topic = -(-n // len(topics))
    files = [f for t in topics for f in sorted(t.glob("*.txt"))[:per_topic]][:n]
    for f in files:
        shutil.copy(f, corpus / f"{f.parent.name}-{f.name}")


def _start(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "ingest"],
        cwd=Path(env["RAG_STORE_DIR"]).parent,  # an empty folder: no .env
        env=child_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _run_for(proc: subprocess.Popen, delay: float) -> float | None:
    """Let the ingest run `delay` seconds (less if it ends); return when its progress bar
    first showed, i.e. how long the interpreter and model loading took, if it did."""
    started = time.monotonic()
    bar_at, seen = None, b""
    while proc.poll() is None and (left := started + delay - time.monotonic()) > 0:
        ready, _, _ = select.select([proc.stderr], [], [], min(left, 0.05))
        if ready and bar_at is None:
            seen += os.read(proc.stderr.fileno(), 65536)
            if b"Ingesting" in seen:
                bar_at = time.monotonic() - started
        elif ready:
            os.read(proc.stderr.fileno(), 65536)
    return bar_at


def _chunk_rate(embeddings) -> float:
    """Chunks embedded per second on this machine, now (the ingest's main cost)."""
    from rag.store import embed_chunks

    texts = [(BBC / "business" / f"{i:03d}.txt").read_text()[:1000] for i in range(1, 49)]
    embed_chunks(embeddings, texts[:8])  # warm up
    started = time.perf_counter()
    embed_chunks(embeddings, texts)
    return len(texts) / (time.perf_counter() - started)


def _chunks_to_write(corpus: Path, states: dict) -> int:
    """How many chunks a complete run would still write."""
    total = 0
    for path in corpus.iterdir():
        if states.get(path.name, {}).get("sha256") != _sha(path):
            total += len(chunk_article(load_article(path, corpus), 1000, 200))
    return total


def _check_store(settings: Settings, embeddings, versions: dict[str, set[str]]) -> dict:
    """The store opens, answers a query and is consistent; returns its articles' states."""
    try:
        index = open_index_for(settings, embeddings)
    except IndexMissingError:  # killed before the collection was created
        assert not any(settings.store_dir.rglob("*.bin")), "vectors without a collection"
        return {}
    try:
        states = check_consistent(index)
        for source, meta in states.items():
            assert meta["sha256"] in versions[source], f"{source}: a version never written"
        if states:
            hits = index.chunks.similarity_search("oil prices and company profits", k=3)
            assert hits and all(h.metadata["source"] in states for h in hits)
        return states
    finally:
        index.chunks._client.close()  # the next subprocess writes; read it afresh next time


def _mutate(corpus: Path, rng: random.Random, versions: dict[str, set[str]], extra: list[Path]):
    """Give the next runs work again: edit 40 articles, delete two, add two."""
    files = sorted(corpus.glob("*.txt"))
    for path in rng.sample(files, 40):
        path.write_text(path.read_text(encoding="utf-8", errors="replace") + "\nUpdated.\n")
        versions.setdefault(path.name, set()).add(_sha(path))
    for path in rng.sample(files, 2):
        path.unlink()
    for source in extra[:2]:
        dest = corpus / f"extra-{source.parent.name}-{source.name}"
        shutil.copy(source, dest)
        versions.setdefault(dest.name, set()).add(_sha(dest))
    del extra[:2]


def test_sigkill_at_random_points_never_corrupts_the_store(tmp_path, embeddings):
    corpus, store = tmp_path / "corpus", tmp_path / "chroma"
    corpus.mkdir()
    _copy_bbc(corpus, ARTICLES)
    versions = {p.name: {_sha(p)} for p in corpus.iterdir()}
    extra = sorted((BBC / "entertainment").glob("*.txt"))[-40:]
    env = {"RAG_STORE_DIR": str(store), "RAG_CORPUS_DIR": str(corpus)}
    settings = Settings(store_dir=store, corpus_dir=corpus)
    rng = random.Random(SEED)
    rate, startup, states = _chunk_rate(embeddings), 3.0, {}
    print(f"embedding rate here: {rate:.0f} chunks/s")

    kills, completed, log = 0, 0, []
    while kills < KILLS:
        assert kills + completed < 3 * KILLS, "the runs keep finishing before the kill"
        work = _chunks_to_write(corpus, states)
        expected = startup + work / rate + 1.0  # start-up, the work, removals and exit
        # One kill in five during start-up (interpreter and models; nothing written yet), the
        # others anywhere in the work: reading, embedding, Chroma deletes and adds, removals.
        in_startup = rng.random() < 0.2
        delay = rng.uniform(0.2, startup) if in_startup else rng.uniform(startup, expected)
        started = time.monotonic()
        proc = _start(env)
        try:
            bar_at = _run_for(proc, delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
            proc.stderr.close()
        elapsed, startup = time.monotonic() - started, bar_at or startup
        if proc.returncode == -signal.SIGKILL:
            kills += 1
            states = _check_store(settings, embeddings, versions)
            whole = len({_sha(p) for p in corpus.iterdir()})
            log.append((round(delay, 2), round(expected, 1), len(states), whole))
            print(f"kill {kills}: after {delay:.2f}s of ~{expected:.0f}s: {len(states)}/{whole}")
        else:
            assert proc.returncode == 0, f"ingest failed on its own ({proc.returncode})"
            completed += 1
            if work:  # calibrate on the real thing
                rate = max(1.0, work / max(elapsed - startup, 0.5))
            print(f"run done in {elapsed:.1f}s, before {delay:.2f}s; now {rate:.0f} chunks/s")
            _mutate(corpus, rng, versions, extra)
            states = _check_store(settings, embeddings, versions)
    print("kill log (delay s, expected run s, articles stored, articles in corpus):", log)

    # One complete run brings the index in line with the corpus.
    done = run_rag("ingest", "--quiet", env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    print(done.stdout)
    index = open_index_for(settings, embeddings)
    try:
        states = check_consistent(index)
        expected: dict[str, str] = {}  # the BBC set holds a few duplicates: indexed once
        for path in sorted(corpus.iterdir()):
            if _sha(path) not in expected.values():
                expected[path.name] = _sha(path)
        assert {s: m["sha256"] for s, m in states.items()} == expected
        # The saved keyword index holds exactly the chunks Chroma holds, whatever was killed.
        assert index.keywords is not None
        assert index.keywords.ids() == set(index.collection.get(include=[])["ids"])
    finally:
        index.chunks._client.close()
    assert any(0 < stored < whole for *_, stored, whole in log), "no kill mid-ingest"
