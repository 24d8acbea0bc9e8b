"""Typed values passed between stages; the Answer is what the CLI, API and UI render."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field


@dataclass(frozen=True)
class Article:
    """One source document, as read from the corpus."""

    source: str  # path relative to the corpus folder, with forward slashes
    title: str
    text: str
    sha256: str
    metadata: dict[str, str] = field(default_factory=dict)  # date, outlet, url, ...
    # What the admin should know about how it was read (e.g. bytes that were not UTF-8).
    notes: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Chunk:
    """A slice of an article, cut on sentence boundaries; `text == article.text[start:end]`."""

    source: str
    index: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Evidence:
    """A passage shown to the LLM under the number `n`; `text == article.text[start:end]`."""

    n: int
    source: str
    title: str
    start: int
    end: int
    text: str
    score: float


class Citation(BaseModel):
    """A numbered pointer from the answer to the exact passage of an article that supports it."""

    n: int = Field(description="The marker [n] used in the answer text.")
    source: str = Field(description="Article path relative to corpus/.")
    title: str
    quote: str = Field(description="The article's text from start to end.")
    start: int = Field(description="Character offset of the passage in the article.")
    end: int


class Answer(BaseModel):
    """An answer whose claims carry [n] markers, each resolved by a citation."""

    answer: str
    citations: list[Citation] = Field(default_factory=list)
    question: str = Field("", description="The standalone question that was answered.")
    refused: bool = Field(False, description="True when the articles do not answer the question.")
    removed: list[str] = Field(
        default_factory=list, description="Answer sentences dropped as unsupported by evidence."
    )
    closest: list[Citation] = Field(
        default_factory=list,
        description="On a refusal: the passages that came closest, so the reader can check.",
    )

    def to_json_dict(self) -> dict[str, Any]:
        """The stable JSON contract shared by `rag ask --json` and `POST /api/ask`."""
        return self.model_dump()


# ---- what the pipeline yields while it answers (`rag.chain.QA.stream`) ---------------------


@dataclass(frozen=True)
class Token:
    """A piece of the model's reply as it is generated (not yet checked)."""

    text: str


@dataclass(frozen=True)
class Retry:
    """The model refused although the evidence matched well: the tokens so far are void, and
    a second try, without the refusal option, follows."""


Event = Token | Retry | Answer  # an answer's stream ends with exactly one Answer
