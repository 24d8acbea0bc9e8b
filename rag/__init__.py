"""Retrieval-augmented Q&A over news articles, with passage-level citations.

Public API (each import is cheap; nothing heavy is built at import time):

    from rag import Settings, build_qa, run_ingest, Answer, Citation, Query

    qa = build_qa(Settings())            # loads the models and opens the index
    answer = qa.ask("Who announced ...?")  # the last event of qa.stream(...)
"""

from rag.errors import RagError
from rag.pipeline import build_qa, run_ingest
from rag.questions import Query
from rag.schema import Answer, Citation, Event, Retry, Token
from rag.settings import Settings

__all__ = [
    "Answer",
    "Citation",
    "Event",
    "Query",
    "RagError",
    "Retry",
    "Settings",
    "Token",
    "build_qa",
    "run_ingest",
]
__version__ = "0.1.0"
