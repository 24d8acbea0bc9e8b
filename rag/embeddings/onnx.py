"""Backend "onnx": the exported model on onnxruntime; bulk work (ingest) in int8."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rag.embeddings.base import Encoder
from rag.embeddings.export import ONNX_FP32, ONNX_INT8
from rag.errors import ModelError


class OnnxEncoder(Encoder):
    """The model on onnxruntime, from the folder made by `rag.embeddings.export.ensure_onnx_model`.

    Bulk work (ingesting) runs the int8 model; questions and answer checks run the fp32 one.
    The int8 model quantizes activations per batch, so a vector would depend on its batch-mates
    and drift by ~0.01 cosine, which matters near the verifier's thresholds. At ingest it
    is ~1.5x faster and leaves retrieval as good (docs/quality.md).
    """

    def __init__(self, model_dir: Path, onnx_dir: Path, **kwargs: Any) -> None:
        super().__init__(model_dir, **kwargs)

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

        session = _session(onnx_dir / ONNX_INT8)
        return lambda feed: session.run(None, feed)[0]

    def _forward(self, ids: np.ndarray, mask: np.ndarray, exact: bool) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feed = {k: v for k, v in feed.items() if k in self.inputs}
        return self.exact.run(None, feed)[0] if exact else self.bulk(feed)


def _session(path: Path) -> Any:
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
