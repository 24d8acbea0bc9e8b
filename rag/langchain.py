"""The archive as a LangChain retriever: evidence passages as `Document`s, for anyone's chain.

    from rag.pipeline import build_langchain_retriever
    retriever = build_langchain_retriever(settings)          # sync and async
    retriever.invoke("Who brokered the ceasefire?", k=3)     # -> [Document, ...]
    retriever.invoke("…", filters={"date_from": "2025-03-01", "folder": "bbc/business"})

Each Document is one passage (a sentence of an article, exactly `article[start:end]`), chosen as
the chat's evidence is (dense + BM25 search, then sentence scoring), best article first, with
`source`, `title`, `start`, `end`, `score` and `n` in its metadata.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field, PrivateAttr

from rag.questions import Filters
from rag.retrieval import Retriever
from rag.schema import CITED_METADATA, Evidence
from rag.settings import Settings


def evidence_document(evidence: Evidence) -> Document:
    """One evidence passage as a LangChain Document (its place in the article in metadata)."""
    return Document(
        id=f"{evidence.source}#{evidence.start}-{evidence.end}",
        page_content=evidence.text,
        metadata={
            "source": evidence.source,
            "title": evidence.title,
            "start": evidence.start,
            "end": evidence.end,
            "score": evidence.score,
            "n": evidence.n,
            **{k: getattr(evidence, k) for k in CITED_METADATA if getattr(evidence, k)},
        },
    )


class ArchiveRetriever(BaseRetriever):
    """Evidence passages from the news archive for a query, as LangChain Documents.

    `k` is the most passages returned (fewer when fewer pass the relevance floors of the
    settings); `filters` ({"date_from", "date_to", "outlet", "folder"}, as in POST /api/ask)
    limits the articles searched. `invoke(query, k=..., filters=...)` overrides either per
    call. Built from `settings` (the index `rag ingest` made) unless an open `Retriever` is
    given.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    settings: Settings = Field(default_factory=Settings)
    k: int = Field(5, ge=1, description="Most passages per query.")
    filters: dict[str, Any] | None = Field(None, description="Only these articles.")
    retriever: Retriever | None = Field(None, exclude=True)
    _inner: Retriever = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        """Open the index (and load the embedding model) once, when built."""
        from rag.pipeline import build_retriever

        self._inner = self.retriever or build_retriever(self.settings)

        Filters.parse(self.filters)  # a bad filter fails here, not at the first query

    def _options(self, kwargs: dict[str, Any]) -> tuple[int, Filters]:
        """The call's passage limit and checked filters (QuestionError if bad)."""
        return int(kwargs.get("k", self.k)), Filters.parse(kwargs.get("filters", self.filters))

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        limit, filters = self._options(kwargs)
        found = self._inner.retrieve(query, limit, filters)
        return [evidence_document(e) for e in found[:limit]]  # the neighbour may be one more

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        # Retrieval is CPU work (one embedding, two searches): run it off the event loop.
        limit, filters = self._options(kwargs)
        found = await run_in_executor(None, self._inner.retrieve, query, limit, filters)
        return [evidence_document(e) for e in found[:limit]]
