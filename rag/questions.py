"""What a question to the pipeline is: the one validator of questions and chat history.

Every way in (CLI, REST, SSE, the chat page, the evaluation) turns its input into a `Query`
here, once; the pipeline then trusts it.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass, field
from typing import Any

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


FILTER_KEYS = ("date_from", "date_to", "outlet", "folder")
FILTER_HELP = (
    'filters must be an object like {"date_from": "2025-03-01", "date_to": "2025-03-31", '
    '"outlet": ["BBC News"], "folder": ["bbc/business"]} (every key optional; dates '
    "YYYY-MM-DD, both ends included; outlets and folders as `rag articles` lists them)."
)
MAX_FILTER_VALUES = 50


def _day(value: object, key: str) -> int | None:
    """A YYYY-MM-DD day as the integer YYYYMMDD the store filters on (`date_int`)."""
    if value is None or value == "":
        return None
    try:
        day = dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        day = None
    if day is None or not isinstance(value, str) or len(value) != 10:
        raise QuestionError(f"{key} must be a day written YYYY-MM-DD, not {value!r}.")
    return day.year * 10000 + day.month * 100 + day.day


def _names(value: object, key: str) -> tuple[str, ...]:
    """One name or a list of names (outlets, folders), trimmed, without duplicates."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) for x in items):
        raise QuestionError(f"{key} must be a name or a list of names. {FILTER_HELP}")
    names = tuple(dict.fromkeys(plain(x).strip("/") for x in items if plain(x).strip("/")))
    if len(names) > MAX_FILTER_VALUES:
        raise QuestionError(f"{key} may list at most {MAX_FILTER_VALUES} names.")
    return names


@dataclass(frozen=True)
class Filters:
    """Which articles a question is asked of: a day range (both ends included), outlets and
    folders (any of each); an empty Filters admits every article."""

    date_from: int | None = None  # YYYYMMDD
    date_to: int | None = None
    outlets: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()  # a folder admits its sub-folders' articles too

    @classmethod
    def parse(cls, raw: object) -> Filters:
        """Check `{"date_from", "date_to", "outlet", "folder"}` (QuestionError says how)."""
        if raw is None or isinstance(raw, Filters):
            return raw or cls()
        if not isinstance(raw, dict):
            raise QuestionError(FILTER_HELP)
        unknown = sorted(str(k) for k in raw if k not in FILTER_KEYS)
        if unknown:
            raise QuestionError(f"Unknown filter {', '.join(unknown)}. {FILTER_HELP}")
        start, end = _day(raw.get("date_from"), "date_from"), _day(raw.get("date_to"), "date_to")
        if start is not None and end is not None and start > end:
            raise QuestionError(
                f"date_from ({raw['date_from']}) is after date_to ({raw['date_to']}). "
                "Swap them, or leave one out for an open range."
            )
        return cls(
            start, end, _names(raw.get("outlet"), "outlet"), _names(raw.get("folder"), "folder")
        )

    def __bool__(self) -> bool:
        return bool(self.date_from or self.date_to or self.outlets or self.folders)

    def where(self) -> dict[str, Any] | None:
        """The Chroma `where` clause that admits exactly the filtered articles (None: all).
        A date range leaves undated articles out."""
        parts: list[dict[str, Any]] = []
        if self.date_from is not None:
            parts.append({"date_int": {"$gte": self.date_from}})
        if self.date_to is not None:
            parts.append({"date_int": {"$lte": self.date_to}})
        if self.outlets:
            parts.append({"outlet": {"$in": list(self.outlets)}})
        if self.folders:
            ors = [{"folders": {"$contains": f}} for f in self.folders]
            parts.append(ors[0] if len(ors) == 1 else {"$or": ors})
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else {"$and": parts}

    def describe(self) -> str:
        """The filters in words, for messages ("" when none)."""

        def day(n: int) -> str:
            return f"{n // 10000:04d}-{n // 100 % 100:02d}-{n % 100:02d}"

        bits = []
        if self.date_from or self.date_to:
            start = day(self.date_from) if self.date_from else "…"
            bits.append(f"dated {start} to {day(self.date_to) if self.date_to else '…'}")
        if self.outlets:
            bits.append("from " + " or ".join(self.outlets))
        if self.folders:
            bits.append("in " + " or ".join(f"{f}/" for f in self.folders))
        return ", ".join(bits)


@dataclass(frozen=True)
class Query:
    """A checked question with the conversation before it, and the articles it is asked of."""

    question: str
    history: History = field(default_factory=list)
    filters: Filters = field(default_factory=Filters)

    @classmethod
    def parse(
        cls, question: object, history: object = None, max_chars: int = 2000, filters: object = None
    ) -> Query:
        """Check and normalise a question, its history and its filters (QuestionError says
        what is wrong)."""
        return cls(
            clean_question(question, max_chars),
            clean_history(history, max_chars),
            Filters.parse(filters),
        )
