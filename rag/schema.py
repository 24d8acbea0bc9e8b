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
    # The article's metadata, where known ("" when not): for the citation.
    date: str = ""
    outlet: str = ""
    url: str = ""
    author: str = ""
    # The article's story group (rag.stories): its id, and the group's other articles
    # ({"source", "title", "outlet", "date"}), which the evidence leaves out.
    story: str = ""
    also_in: tuple[dict[str, str], ...] = ()


CITED_METADATA = ("date", "outlet", "url", "author")  # article metadata a citation carries


class Copy(BaseModel):
    """Another article of the same story (a syndicated or rewritten copy) than the cited one."""

    source: str = Field(description="Article path relative to corpus/.")
    title: str
    outlet: str | None = None
    date: str | None = Field(None, description="Publication day; null: undated.")


class Citation(BaseModel):
    """A numbered pointer from the answer to the exact passage of an article that supports it."""

    n: int = Field(description="The marker [n] used in the answer text.")
    source: str = Field(description="Article path relative to corpus/.")
    title: str
    quote: str = Field(description="The article's text from start to end.")
    start: int = Field(description="Character offset of the passage in the article.")
    end: int
    date: str | None = Field(
        None, description="Publication day (YYYY-MM-DD for web pages); null: undated."
    )
    outlet: str | None = Field(None, description="The publication (site name), if known.")
    url: str | None = Field(None, description="The original article's address, if known.")
    author: str | None = Field(None, description="The byline, if known.")
    also_in: list[Copy] = Field(
        default_factory=list,
        description="The same story in other articles (near-duplicates, found at ingest), "
        "oldest first; they are not cited separately.",
    )


class Check(BaseModel):
    """The verdict on one sentence of the model's reply: shown (with its citations) or removed,
    and why."""

    sentence: str = Field(description="The sentence as checked, without its markers.")
    verdict: str = Field(description='"supported" (shown) or "removed".')
    reason: str = Field("", description="Why it was removed; empty when shown.")
    score: float | None = Field(
        None, description="The claim check's probability that the cited passage states it."
    )
    citations: list[int] = Field(
        default_factory=list, description="The citation numbers [n] it carries in the answer."
    )
    answers: bool = Field(False, description="True when it gives what the question asks for.")


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
    checks: list[Check] = Field(
        default_factory=list,
        description="The verdict on every sentence of the model's reply, in order.",
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


@dataclass(frozen=True)
class Sentence:
    """One sentence of the answer that passed the check, ready to show: `text` carries its
    [n] markers (numbered as in the final Answer) and `citations` the passages they point to.
    The sentences of a stream, joined with spaces, are the final Answer's text."""

    text: str
    citations: list[Citation]
    check: Check


Event = Token | Retry | Sentence | Answer  # an answer's stream ends with exactly one Answer
