"""Wires the stages together from one Settings object. Nothing here runs at import time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rag.settings import Settings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from rag.chain import QA
    from rag.embeddings import SentenceEncoder
    from rag.indexing import IngestReport
    from rag.keywords import KeywordIndex
    from rag.langchain import ArchiveRetriever
    from rag.retrieval import Retriever
    from rag.store import Index
    from rag.support import SupportModel


def fingerprint(settings: Settings) -> dict[str, str]:
    """What an index must have been built with to be usable with these settings."""
    from rag.embeddings import embedding_name

    return {
        "embedding_model": embedding_name(settings),
        "chunking": f"{settings.chunk_size}/{settings.chunk_overlap}",
    }


def open_index_for(
    settings: Settings, embeddings: SentenceEncoder | None = None, *, create: bool = False
) -> Index:
    """Open (or create) the index described by `settings`; returns an `Index`."""
    from rag.embeddings import make_embeddings
    from rag.store import open_index

    embeddings = embeddings or make_embeddings(settings)
    return open_index(settings, embeddings, fingerprint(settings), create=create)


def open_records(settings: Settings) -> Index:
    """The index opened to read its records (`rag articles`): no embedding model is loaded."""
    from rag.embeddings.base import SentenceEncoder
    from rag.store import open_index

    class NoModel(SentenceEncoder):
        """Stands in for the model; reading records never embeds."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            raise NotImplementedError("this index was opened to read records only")

        def embed_query(self, text: str) -> list[float]:
            raise NotImplementedError("this index was opened to read records only")

        def encode_with_sentences(self, texts: Any, spans: Any) -> Any:
            raise NotImplementedError("this index was opened to read records only")

    return open_index(settings, NoModel(), fingerprint(settings), create=False)


def run_ingest(settings: Settings, *, rebuild: bool = False, progress: bool = True) -> IngestReport:
    """Bring the index in line with `settings.corpus_dir`; returns an `IngestReport`.

    With `rebuild` (or when the index was made by an older version of rag), everything is
    ingested into a new collection that replaces the old one only once it is complete: until
    then, and if the run is killed, the old index keeps answering.
    """
    from rag.embeddings import make_embeddings
    from rag.errors import IndexMismatchError
    from rag.loading import iter_corpus_files

    iter_corpus_files(settings.corpus_dir)  # fail fast, before loading any model
    embeddings = make_embeddings(settings)
    notes = []
    if not rebuild:
        try:
            index = open_index_for(settings, embeddings, create=True)
        except IndexMismatchError as exc:
            if exc.fields != {"schema"}:
                raise
            notes.append("The index was made by an older version of rag; it was rebuilt.")
            rebuild = True
    if rebuild:
        report = _rebuild(settings, embeddings, progress)
    else:
        report = _ingest_into(settings, index, progress)
    report.notes += notes
    return report


def _ingest_into(settings: Settings, index: Index, progress: bool) -> IngestReport:
    from rag.indexing import ingest

    return ingest(
        settings.corpus_dir,
        index,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        max_bytes=int(settings.max_file_mb * 2**20),
        progress=progress,
        links=settings.corpus_links,
    )


def _rebuild(settings: Settings, embeddings: SentenceEncoder, progress: bool) -> IngestReport:
    from rag.store import drop_index, replace_collection

    building = settings.model_copy(update={"collection": f"{settings.collection}-rebuild"})
    drop_index(building)  # what a killed rebuild left behind
    report = _ingest_into(building, open_index_for(building, embeddings, create=True), progress)
    replace_collection(settings, building.collection)
    return report


def make_retriever(
    settings: Settings,
    index: Index,
    embeddings: SentenceEncoder,
    keyword_index: KeywordIndex | None = None,
) -> Retriever:
    """A Retriever over `index` with the evidence limits from `settings`."""
    from rag.retrieval import Retriever

    return Retriever(
        index,
        embeddings,
        top_k=settings.top_k,
        max_sentences=settings.evidence_sentences,
        max_chars=settings.evidence_max_chars,
        min_relevance=settings.min_relevance,
        relative_relevance=settings.relative_relevance,
        neighbours=settings.evidence_neighbours,
        keyword_index=keyword_index,
    )


def build_retriever(settings: Settings, embeddings: SentenceEncoder | None = None) -> Retriever:
    """Open the index and build its Retriever (with BM25 when `settings.hybrid`)."""
    from rag.embeddings import make_embeddings
    from rag.keywords import KeywordIndex

    embeddings = embeddings or make_embeddings(settings)
    index = open_index_for(settings, embeddings)
    return make_retriever(
        settings, index, embeddings, KeywordIndex(index) if settings.hybrid else None
    )


def build_langchain_retriever(
    settings: Settings, k: int | None = None, embeddings: SentenceEncoder | None = None
) -> ArchiveRetriever:
    """The archive as a LangChain `BaseRetriever` (sync and async): up to `k` (default
    `settings.evidence_sentences`) evidence passages per query, as Documents."""
    from rag.langchain import ArchiveRetriever

    return ArchiveRetriever(
        settings=settings,
        k=k or settings.evidence_sentences,
        retriever=build_retriever(settings, embeddings),
    )


def build_qa(
    settings: Settings,
    llm: BaseChatModel | None = None,
    embeddings: SentenceEncoder | None = None,
) -> QA:
    """Build the question-answering pipeline (`QA`); loads the embedding model and the LLM."""
    from rag.chain import QA
    from rag.citations import Verifier
    from rag.embeddings import make_embeddings
    from rag.llm import make_llm

    embeddings = embeddings or make_embeddings(settings)
    retriever = build_retriever(settings, embeddings)

    def article_text(source: str) -> str | None:
        found = retriever.index.article(source)  # the index is reopened when ingest writes
        return found[1] if found else None

    verifier = Verifier(
        embeddings,
        settings.support_threshold,
        support=make_support(settings),
        support_min=settings.support_min,
        articles=article_text,
    )
    return QA(
        retriever,
        llm or make_llm(settings),
        verifier,
        max_question_chars=settings.max_question_chars,
        few_shot=settings.few_shot,
        retry_refusals=settings.retry_refusals,
    )


def make_support(settings: Settings) -> SupportModel | None:
    """The trained claim check (`rag.support`), or None when `settings.claim_check` is off."""
    if not settings.claim_check:
        return None
    from rag.embeddings import embedding_path
    from rag.support import SupportModel

    return SupportModel(embedding_path(settings))
