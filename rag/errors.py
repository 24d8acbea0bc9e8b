"""Errors that tell the user what to do next.

Every error raised on purpose by the library derives from :class:`RagError`; the CLI
and the server show its message as is, without a traceback.
"""

from __future__ import annotations


class RagError(Exception):
    """Base class: the message says what went wrong and how to fix it."""


class SettingsError(RagError):
    """A setting is missing or has a value that cannot work."""


class CorpusError(RagError):
    """The corpus folder is missing, empty, or holds nothing readable."""


class ArticleError(RagError):
    """One article cannot be read; ingestion skips it and reports why."""


class IndexMissingError(RagError):
    """No index has been built yet at the configured store path."""


class IndexMismatchError(RagError):
    """The index was built with another embedding model or chunking scheme."""

    def __init__(self, message: str, fields: frozenset[str] = frozenset()) -> None:
        super().__init__(message)
        self.fields = fields  # what differs: "schema", "embedding_model", "chunking"


class StoreUnavailableError(SettingsError):
    """The Chroma server cannot be reached (it may come back)."""


class ModelError(RagError):
    """The language or embedding model cannot be found, assembled or loaded."""


class QuestionError(RagError):
    """The question cannot be answered as asked (empty, too long, ...)."""


class ModelLoadingError(RagError):
    """The model is still loading; the request can be repeated in a few seconds."""

    retry_after = 5


class BusyError(RagError):
    """Too many requests are already waiting for the model."""

    retry_after = 10


class RateLimitError(RagError):
    """This client asked more questions per minute than the server allows."""

    def __init__(self, message: str, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthError(RagError):
    """The request lacks the API token the server requires (or sends a wrong one)."""


class IndexBusyError(RagError):
    """Another process (a second `rag ingest`) is writing the index."""
