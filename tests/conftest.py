"""Shared fixtures: real components, built once per session (the models take seconds to load)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

# Tests run offline, like the app: nothing may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
BBC = ROOT.parent / "shared" / "corpora" / "bbc"
OFF_RAMP = "india-pakistan-off-ramp-after-clash.txt"
MEDIATION = "india-pakistan-us-mediation-backchannel-diplomacy.txt"
NO_READ_ALL = [  # root without the capabilities that let it read any file: a real EACCES
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]


def run_rag(
    *args: str,
    env: dict[str, str],
    unprivileged: bool = False,
    stdin: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """Run the real `rag` command with `env` over this process's environment; `unprivileged`
    drops root's power to read any file."""
    command = [sys.executable, "-m", "rag.cli", *args]
    return subprocess.run(
        (NO_READ_ALL if unprivileged else []) + command,
        cwd=ROOT,
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def embeddings():
    """The real packaged all-MiniLM-L6-v2."""
    from rag.embeddings import make_embeddings
    from rag.settings import Settings

    return make_embeddings(Settings())


@pytest.fixture
def make_settings(tmp_path):
    """Settings pointing at a fresh temp store (and a temp copy of the seed corpus)."""
    from rag.settings import Settings

    def make(**overrides):
        corpus = tmp_path / "corpus"
        if not corpus.exists():
            shutil.copytree(CORPUS, corpus)
        values = {"corpus_dir": corpus, "store_dir": tmp_path / "chroma", **overrides}
        return Settings(**values)

    return make


@pytest.fixture(scope="session")
def seed_settings(tmp_path_factory):
    """Settings for a session-wide index of the seed corpus."""
    from rag.settings import Settings

    tmp = tmp_path_factory.mktemp("seed")
    shutil.copytree(CORPUS, tmp / "corpus")
    return Settings(corpus_dir=tmp / "corpus", store_dir=tmp / "chroma")


@pytest.fixture(scope="session")
def seed_index(seed_settings, embeddings):
    """A real Chroma index of the seed corpus."""
    from rag.indexing import ingest
    from rag.pipeline import open_index_for

    index = open_index_for(seed_settings, embeddings, create=True)
    ingest(seed_settings.corpus_dir, index, progress=False)
    return index


@pytest.fixture(scope="session")
def llm():
    """The real default LLM (packaged Qwen2.5-Coder-1.5B-Instruct, embedded llama.cpp)."""
    from rag.llm import make_llm
    from rag.settings import Settings

    return make_llm(Settings())


@pytest.fixture(scope="session")
def qa(seed_settings, seed_index, embeddings, llm):
    """The full real pipeline over the seed corpus."""
    from rag.pipeline import build_qa

    return build_qa(seed_settings, llm=llm, embeddings=embeddings)


def article_text(source: str) -> str:
    """The seed article's text as the loader reads it."""
    from rag.loading import load_article

    return load_article(CORPUS / source, CORPUS).text


def check_consistent(index) -> dict:
    """No orphan, partial or duplicate chunks: every article is whole, or absent."""
    data = index.collection.get(include=["metadatas"])
    assert len(data["ids"]) == len(set(data["ids"]))
    per_source = Counter(m["source"] for m in data["metadatas"])
    states = index.article_states()
    assert set(per_source) == set(states), "chunks without their article record"
    for source, meta in states.items():
        assert per_source[source] == meta["n_chunks"], f"{source} is partial"
        shas = {m["sha256"] for m in data["metadatas"] if m["source"] == source}
        assert shas == {meta["sha256"]}, f"{source} mixes versions"
    return states
