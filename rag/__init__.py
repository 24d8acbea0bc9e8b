"""Retrieval-augmented Q&A over news articles, with passage-level citations.

Public API (each import is cheap; nothing heavy is built at import time):

    from rag import Settings, build_qa, run_ingest, Answer, Citation
"""

from rag.errors import RagError
from rag.pipeline import build_qa, run_ingest
from rag.schema import Answer, Citation
from rag.settings import Settings

__all__ = ["Answer", "Citation", "RagError", "Settings", "build_qa", "run_ingest"]
__version__ = "0.1.0"
