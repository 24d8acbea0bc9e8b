"""The shared part of every embedding backend: tokenising, pooling, and sentence vectors."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from langchain_core.embeddings import Embeddings

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

Span = tuple[int, int]


class SentenceEncoder(Embeddings):
    """What the pipeline needs of an embedding model: LangChain's `Embeddings`, plus one vector
    per sentence of a text from the text's own pass (`Encoder` below; the tests' fake)."""

    @abstractmethod
    def encode_with_sentences(
        self, texts: Sequence[str], spans: Sequence[Sequence[Span]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Unit vectors of `texts`, and per text one unit vector per (start, end) span."""


class Encoder(SentenceEncoder):
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
        vectors: list[list[float]] = self.encode(texts).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Unit vector of one query."""
        vector: list[float] = self.encode([text])[0].tolist()
        return vector

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
    unit: np.ndarray = vectors / np.clip(norms, 1e-12, None)
    return unit


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
