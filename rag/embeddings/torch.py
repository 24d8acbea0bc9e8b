"""Backend "torch": sentence-transformers itself, in fp32: the reference implementation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rag.embeddings.base import Encoder


class TorchEncoder(Encoder):
    """The model run by sentence-transformers on torch (fp32): the reference implementation."""

    def __init__(self, model_dir: Path, **kwargs: Any) -> None:
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
