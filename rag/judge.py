"""The packaged LLM as a yes/no judge: P("Yes") read from the next-token logits of a prompt,
with the prompt's shared prefix reused from llama.cpp's cache (only the embedded backend).

Measured as a route of the claim check (bench/claims.py, docs/quality.md).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

CLAIM_PROMPT = (
    "Passage: {passage}\n\nQuestion: {question}\nClaim: {claim}\n\n"
    "Does the passage state exactly what the claim says (the same people in the same roles, "
    "the same figures for the same time, a result and not an estimate or plan), and does the "
    "claim answer the question? Answer Yes or No."
)
TEMPLATE = "<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"


class LlmJudge:
    """P(Yes) of a loaded `llama_cpp.Llama` for yes/no prompts."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._yes = self._first_tokens(["Yes", "yes", " Yes"])
        self._no = self._first_tokens(["No", "no", " No"])

    def _first_tokens(self, words: list[str]) -> list[int]:
        return sorted(
            {self.client.tokenize(w.encode(), add_bos=False, special=False)[0] for w in words}
        )

    def p_yes(self, content: str) -> float:
        """P("Yes") / (P("Yes") + P("No")) for the first token of the model's reply."""
        tokens = self.client.tokenize(TEMPLATE.format(content=content).encode(), special=True)
        with self._lock:
            cached = list(self.client.input_ids[: self.client.n_tokens])
            common = 0
            for a, b in zip(cached, tokens[:-1], strict=False):
                if a != b:
                    break
                common += 1
            self.client.n_tokens = common
            self.client.eval(tokens[common:])
            n_vocab = self.client.n_vocab()
            logits = np.ctypeslib.as_array(self.client._ctx.get_logits(), shape=(n_vocab,))
            top = float(np.max(logits))
        yes = sum(math.exp(float(logits[t]) - top) for t in self._yes)
        no = sum(math.exp(float(logits[t]) - top) for t in self._no)
        return yes / (yes + no) if yes + no else 0.5

    def claim(self, question: str, claim: str, passage: str) -> float:
        """P(the passage states the claim and the claim answers the question)."""
        return self.p_yes(CLAIM_PROMPT.format(passage=passage, question=question, claim=claim))
