"""Shared fixtures and fakes.

Tiers (see the README): a test is `fast` unless it is marked `models` (the real embedding model,
`../shared`, or a child process that loads them), `e2e` (the real LLM) or `browser` (Chromium).
Tests that ask for the real-model fixtures below are marked `models` / `e2e` automatically;
fast tests are kept honest: the real model loaders raise in them.

Every test is isolated from the developer's machine: `RAG_*` variables are cleared and `.env`
is not read.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from rag.embeddings.base import SentenceEncoder
from rag.settings import OFFLINE_ENV, Settings

for _key, _value in OFFLINE_ENV.items():  # tests run offline, like the app
    os.environ.setdefault(_key, _value)

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
MODEL_FIXTURES = {"embeddings", "seed_index", "seed_settings", "torch_encoder", "ready_service"}
LLM_FIXTURES = {"llm", "qa"}


# ---- tiers and isolation ------------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by what they use: `e2e` for the real LLM, `models` for the real embedding
    model, `fast` for everything else."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & LLM_FIXTURES:
            item.add_marker(pytest.mark.e2e)
        if used & (MODEL_FIXTURES | LLM_FIXTURES):
            item.add_marker(pytest.mark.models)
        if not any(item.get_closest_marker(m) for m in ("models", "e2e", "browser")):
            item.add_marker(pytest.mark.fast)


@pytest.fixture(scope="session", autouse=True)
def isolated_session() -> Iterator[None]:
    """No RAG_* variable or .env of the developer's reaches any test or session fixture."""
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("RAG_"):
                patch.delenv(key)
        patch.setitem(Settings.model_config, "env_file", None)
        yield


@pytest.fixture(autouse=True)
def isolated(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that sets RAG_* variables has them undone after it; fast tests load no model."""
    for key in list(os.environ):
        if key.startswith("RAG_"):
            monkeypatch.delenv(key)
    if request.node.get_closest_marker("fast"):
        import llama_cpp

        from rag.embeddings.base import Encoder

        def forbidden(*args: object, **kwargs: object) -> None:
            raise AssertionError("a fast test loaded a real model: mark it `models` or use a fake")

        monkeypatch.setattr(Encoder, "__init__", forbidden)
        monkeypatch.setattr(llama_cpp, "Llama", forbidden)


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child `rag` process: this one's without RAG_*, offline, plus
    `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(OFFLINE_ENV, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_rag(
    *args: str,
    env: dict[str, str],
    unprivileged: bool = False,
    stdin: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run the real `rag` command with `env` (RAG_* settings) in an empty folder, so that no
    `.env` is read; `unprivileged` drops root's power to read any file."""
    command = [sys.executable, "-m", "rag.cli", *args]
    with tempfile.TemporaryDirectory(prefix="rag-test-cwd-") as cwd:
        return subprocess.run(
            (NO_READ_ALL if unprivileged else []) + command,
            cwd=cwd,
            env=child_env(**env),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


# ---- fakes --------------------------------------------------------------------------------


class FakeChat(BaseChatModel):
    """A chat model that answers with queued replies (`enqueue`) and records every prompt.

    Replies stream word by word. With the queue empty it says so in its reply."""

    replies: list[str] = []
    prompts: list[list[BaseMessage]] = []

    @property
    def _llm_type(self) -> str:
        return "fake-chat"

    def enqueue(self, *replies: str) -> FakeChat:
        """Add replies, answered in order."""
        self.replies.extend(replies)
        return self

    def _next(self, messages: list[BaseMessage]) -> str:
        self.prompts.append(messages)
        return self.replies.pop(0) if self.replies else "(no reply queued)"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        message = AIMessage(content=self._next(messages))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self, messages: list[BaseMessage], *args: Any, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        for piece in re.split(r"(?<=\s)", self._next(messages)):
            if piece:
                yield ChatGenerationChunk(message=AIMessageChunk(content=piece))


def fake_chat(*replies: str) -> FakeChat:
    """A fresh FakeChat with these replies queued."""
    return FakeChat(replies=list(replies), prompts=[])


class FakeEmbeddings(SentenceEncoder):
    """Deterministic vectors from hashed word stems: texts sharing words are close. Enough for
    plumbing (store, retrieval order, the verifier's arithmetic), not for quality."""

    dim = 384

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dim, dtype=np.float32)
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            digest = hashlib.md5(word[:6].encode()).digest()
            vector[int.from_bytes(digest[:4], "little") % self.dim] += 1.0
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of `texts`."""
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text).tolist()

    def encode_with_sentences(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Like `rag.embeddings.Encoder.encode_with_sentences`: each span embedded alone."""
        per_text = [self.encode([t[a:b] for a, b in s]) for t, s in zip(texts, spans, strict=True)]
        return self.encode(texts), per_text


@pytest.fixture
def fake_embeddings() -> FakeEmbeddings:
    """Hashed bag-of-words vectors, no model."""
    return FakeEmbeddings()


@pytest.fixture
def fake_index(tmp_path: Path, fake_embeddings: FakeEmbeddings) -> Any:
    """A real Chroma index of the seed corpus, in a temp dir, with fake embeddings."""
    from rag.indexing import ingest
    from rag.pipeline import open_index_for

    settings = Settings(corpus_dir=CORPUS, store_dir=tmp_path / "fake-chroma")
    index = open_index_for(settings, fake_embeddings, create=True)
    ingest(CORPUS, index, progress=False)
    return index


# ---- real components, built once per session ----------------------------------------------


@pytest.fixture(scope="session")
def embeddings() -> Any:
    """The real packaged all-MiniLM-L6-v2."""
    from rag.embeddings import make_embeddings

    return make_embeddings(Settings())


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    """Settings pointing at a fresh temp store (and a temp copy of the seed corpus)."""

    def make(**overrides: Any) -> Settings:
        corpus = tmp_path / "corpus"
        if not corpus.exists():
            shutil.copytree(CORPUS, corpus)
        values = {"corpus_dir": corpus, "store_dir": tmp_path / "chroma", **overrides}
        return Settings(**values)

    return make


@pytest.fixture(scope="session")
def seed_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for a session-wide index of the seed corpus."""
    tmp = tmp_path_factory.mktemp("seed")
    shutil.copytree(CORPUS, tmp / "corpus")
    return Settings(corpus_dir=tmp / "corpus", store_dir=tmp / "chroma")


@pytest.fixture(scope="session")
def seed_index(seed_settings: Settings, embeddings: Any) -> Any:
    """A real Chroma index of the seed corpus."""
    from rag.indexing import ingest
    from rag.pipeline import open_index_for

    index = open_index_for(seed_settings, embeddings, create=True)
    ingest(seed_settings.corpus_dir, index, progress=False)
    return index


@pytest.fixture(scope="session")
def llm() -> Any:
    """The real default LLM (packaged Qwen2.5-Coder-1.5B-Instruct, embedded llama.cpp)."""
    from rag.llm import make_llm

    return make_llm(Settings())


@pytest.fixture(scope="session")
def qa(seed_settings: Settings, seed_index: Any, embeddings: Any, llm: Any) -> Any:
    """The full real pipeline over the seed corpus."""
    from rag.pipeline import build_qa

    return build_qa(seed_settings, llm=llm, embeddings=embeddings)


def article_text(source: str) -> str:
    """The seed article's text as the loader reads it."""
    from rag.loading import load_article

    return load_article(CORPUS / source, CORPUS).text


def check_consistent(index: Any) -> dict[str, Any]:
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
