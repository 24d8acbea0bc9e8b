"""What a question to the pipeline is: the one validator of questions and chat history.

Every way in (CLI, REST, SSE, the chat page, the evaluation) turns its input into a `Query`
here, once; the pipeline then trusts it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from rag.errors import QuestionError

History = list[tuple[str, str]]  # (user question, assistant answer) pairs, oldest first

HISTORY_TURNS = 3  # turns shown to the condense step
HISTORY_ANSWER_CHARS = 1000  # with 3 turns of 2,000-char questions, fits the 4,096-token context
HISTORY_HELP = (
    "history must be a list of [question, answer] pairs of strings, "
    'or of {"role": ..., "content": ...} messages.'
)


def plain(text: str) -> str:
    """NFC, control and format characters turned into spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return " ".join(text.split())


def clean_question(question: object, max_chars: int = 2000) -> str:
    """Normalise a user question or raise QuestionError saying how to ask instead."""
    if not isinstance(question, str):
        raise QuestionError("The question must be text.")
    text = plain(question)
    if not text:
        raise QuestionError("The question is empty. Type a question about the articles.")
    if len(text) > max_chars:
        raise QuestionError(
            f"The question is {len(text):,} characters long; the limit is {max_chars:,}. "
            "Ask something shorter."
        )
    return text


def _pairs_from_messages(raw: list[dict[str, object]]) -> History:
    pairs: History = []
    pending: str | None = None
    for item in raw:
        role, content = item.get("role"), item.get("content")
        if role not in ("user", "assistant", "system") or not isinstance(content, str):
            raise QuestionError(
                'Each history message needs "role" (user or assistant) and text "content".'
            )
        if role == "user":
            pending = content
        elif role == "assistant" and pending is not None:
            pairs.append((pending, content))
            pending = None
    return pairs  # an unanswered last question is the current one, not history


def _is_pair(item: object) -> bool:
    return (
        isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(x, str) for x in item)
    )


def clean_history(raw: object, max_chars: int = 2000) -> History:
    """[[question, answer], ...] or [{"role", "content"}, ...] -> (question, answer) pairs of
    plain text, the last `HISTORY_TURNS` turns, cut to what the model's context holds.
    QuestionError (saying what is expected) for anything else."""
    if raw is None or (isinstance(raw, (list, tuple)) and not raw):
        return []
    if not isinstance(raw, (list, tuple)):
        raise QuestionError(HISTORY_HELP)
    items = list(raw)
    if all(isinstance(item, dict) for item in items):
        pairs = _pairs_from_messages(items)
    elif any(isinstance(item, dict) for item in items):
        raise QuestionError("history must be all pairs or all messages, not a mix.")
    elif all(_is_pair(item) for item in items):
        pairs = [(item[0], item[1]) for item in items]
    else:
        raise QuestionError(HISTORY_HELP)
    return [
        (plain(q)[:max_chars], plain(a)[:HISTORY_ANSWER_CHARS]) for q, a in pairs[-HISTORY_TURNS:]
    ]


@dataclass(frozen=True)
class Query:
    """A checked question with the conversation before it."""

    question: str
    history: History = field(default_factory=list)

    @classmethod
    def parse(cls, question: object, history: object = None, max_chars: int = 2000) -> Query:
        """Check and normalise a question and its history (QuestionError says what is wrong)."""
        return cls(clean_question(question, max_chars), clean_history(history, max_chars))
