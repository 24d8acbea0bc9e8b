"""The archive as a LangChain retriever: LangChain's own standard suite on a real store, and
the README's LCEL example run as written."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from langchain_core.prompts import ChatPromptTemplate
from langchain_tests.integration_tests import RetrieversIntegrationTests

from rag.langchain import ArchiveRetriever
from rag.settings import Settings
from tests.conftest import OFF_RAMP, fake_chat
from tests.server_fixtures import ingested_store

pytestmark = pytest.mark.models
ROOT = Path(__file__).resolve().parent.parent


@cache
def store() -> Path:
    """The seed corpus, ingested by a real `rag ingest` (once per session)."""
    return ingested_store()


class TestArchiveRetriever(RetrieversIntegrationTests):
    """langchain-tests' `RetrieversIntegrationTests`, unchanged, on the real index."""

    @property
    def retriever_constructor(self) -> type[ArchiveRetriever]:
        return ArchiveRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"settings": Settings(store_dir=store())}

    @property
    def retriever_query_example(self) -> str:
        return "Why did the India and Pakistan conflict escalate after the bombing in Kashmir?"


def test_documents_carry_the_passage_and_its_place_in_the_article():
    retriever = ArchiveRetriever(settings=Settings(store_dir=store()), k=3)
    docs = retriever.invoke("How many Indian soldiers were killed in the suicide bombing?")
    assert 1 <= len(docs) <= 3
    best = docs[0]
    assert best.metadata["source"] == OFF_RAMP and "killed 40 Indian soldiers" in best.page_content
    article = (ROOT / "corpus" / OFF_RAMP).read_text(encoding="utf-8")
    for doc in docs:
        meta = doc.metadata
        assert set(meta) == {"source", "title", "start", "end", "score", "n"}
        if meta["source"] == OFF_RAMP:
            assert article[meta["start"] : meta["end"]] == doc.page_content


def python_block(path: Path, marker: str) -> str:
    """The ```python block that follows `<!-- marker -->` in a Markdown file."""
    text = path.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", text, re.S)
    assert found, f"no {marker} example in {path}"
    return found.group(1)


@pytest.mark.parametrize("doc", ["README.md", "docs/integrations.md"])
def test_the_lcel_example_runs_as_written(doc, monkeypatch):
    """Someone else's chain (their prompt, their model) with our retriever, as documented."""
    monkeypatch.setenv("RAG_STORE_DIR", str(store()))
    model = fake_chat("Forty soldiers [india-pakistan-off-ramp-after-clash.txt].")
    namespace: dict[str, Any] = {
        "their_prompt": ChatPromptTemplate.from_template("{context}\n\nQ: {question}"),
        "their_model": model,
    }
    exec(python_block(ROOT / doc, "langchain-example"), namespace)
    assert namespace["answer"].content.startswith("Forty soldiers")
    prompt = model.prompts[0][0].content
    assert "killed 40 Indian soldiers" in prompt and OFF_RAMP in prompt
