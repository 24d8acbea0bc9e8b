"""Stage 9b, support: does a passage state what an answer sentence claims?

A cross-encoder reads the claim and the passage together and gives the probability that the
passage supports the claim. It is the packaged all-MiniLM-L6-v2 with a small LoRA adapter
trained here, offline, on pairs made from the BBC corpus itself (`scripts/support_pairs.py`,
`scripts/train_support.py`): supported claims (the sentence, a clause, other units, a resolved
pronoun) against the hard negatives a small model writes (another number, name or year from the
same passage, names in swapped roles, a negation, an estimate stated as the result, a true
clause joined to an invented one). The adapter ships in `rag/models/support/` (~2 MB).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rag.errors import ModelError

MAX_TOKENS = 128
# The linear layers of every transformer block get a low-rank update.
LORA_TARGETS = (
    r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
    r"|intermediate\.dense|output\.dense)"
)
ADAPTER_DIR = Path(__file__).parent / "models" / "support"


def load_base(model_dir: Path) -> tuple[Any, Any]:
    """The MiniLM as a one-logit sequence classifier (a fresh head), and its tokenizer."""
    import logging

    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # a fresh head is expected
    logging.getLogger("transformers").setLevel(logging.ERROR)
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    return model, tokenizer


class SupportModel:
    """Scores (claim, passage) pairs: the probability that the passage states the claim."""

    def __init__(self, model_dir: Path, adapter_dir: Path = ADAPTER_DIR) -> None:
        if not (adapter_dir / "adapter_config.json").exists():
            raise ModelError(
                f"The claim-check adapter is missing from {adapter_dir}. Reinstall rag, or "
                "train it: python scripts/train_support.py (see docs/quality.md)."
            )
        self.model_dir, self.adapter_dir = model_dir, adapter_dir
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        from peft import PeftModel

        base, self._tokenizer = load_base(self.model_dir)
        model = PeftModel.from_pretrained(base, str(self.adapter_dir))
        self._model = model.merge_and_unload().eval()

    def scores(self, pairs: list[tuple[str, str]]) -> list[float]:
        """P(supported) for each (claim, passage) pair."""
        if not pairs:
            return []
        import torch

        with self._lock:
            if self._model is None:
                self._load()
            enc = self._tokenizer(
                [c for c, _ in pairs],
                [p for _, p in pairs],
                truncation=True,
                max_length=MAX_TOKENS,
                padding=True,
                return_tensors="pt",
            )
            with torch.inference_mode():
                logits = self._model(**enc).logits.squeeze(-1)
        return [float(x) for x in torch.sigmoid(logits).reshape(-1)]
