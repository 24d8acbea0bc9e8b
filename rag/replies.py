"""Stage 9a, replies: the model's reply cut into sentences, each with the [n] markers it
carries, talk about the evidence dropped, refusals recognised.

The sentences are cut as the reply streams in (`complete_sentences`), so each can be checked
and shown as soon as it is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.chunking import split_sentences
from rag.claims import MARKERS
from rag.prompts import REFUSAL

_MARKERS_AFTER_STOP = re.compile(r"([.!?])\s*((?:\[\s*\d+(?:\s*[,;]\s*\d+)*\s*\]\s*)+)")
# Talk about the evidence itself ("..., the evidence states.", "According to the articles, ..."):
# the small model imitates the attribution in its worked example. The reader sees the citation.
_DOCS = r"(?:the\s+)?(?:evidence|articles?|passages?|text|context|obituary)"
_META_TAIL = re.compile(
    rf",\s*(?:as\s+|according\s+to\s+)?{_DOCS}"
    r"(?:\s+(?:states?|says?|supports?|shows?|mentions?|notes?|suggests?|reports?|confirms?))?"
    r"(?:\s+this)?\s*(?=[.!?]?$)",
    re.IGNORECASE,
)
_META_HEAD = re.compile(
    rf"^(?:according\s+to|as\s+(?:stated|mentioned)\s+in|based\s+on)\s+{_DOCS}(?:\s*\[\d+\])?,\s*",
    re.IGNORECASE,
)


# A closing clause that points at the evidence by a number the model made up, as its headers
# name each article once ("..., the university mentioned in Article 1."): the reader sees the
# citation instead. One digit and a comma before it, so "Article 370" or "the clause in
# Article 5 of the treaty" stay.
_META_REF_TAIL = re.compile(
    rf",\s*(?:as\s+|(?:the\s+)?[A-Za-z]+(?:\s+[A-Za-z]+)?\s+)?"
    rf"(?:mentioned|named|cited|described|reported|stated|given|listed)\s+in\s+{_DOCS}\s+\d"
    r"\s*(?=[.!?]?$)",
    re.IGNORECASE,
)


def strip_meta(sentence: str) -> str:
    """Drop words about the evidence itself, keeping the claim: "X, the articles state." -> "X."."""
    sentence = _META_REF_TAIL.sub("", _META_TAIL.sub("", sentence))
    stripped = _META_HEAD.sub("", sentence)
    return stripped[:1].upper() + stripped[1:] if stripped != sentence else sentence


_FUNCTION_WORDS = set(
    "the a an of to in on at for by with from and or but as is are was were be been has have "
    "had it its he she they his her their this that which who when where after before said".split()
)


def _content_pairs(text: str) -> set[tuple[str, str]]:
    words = re.findall(r"[a-z0-9£$€%']+", text.lower())
    return {
        (a, b)
        for a, b in zip(words, words[1:], strict=False)
        if a not in _FUNCTION_WORDS and b not in _FUNCTION_WORDS and len(a) > 2 and len(b) > 2
    }


def cut_echo(sentence: str) -> str:
    """Cut a tail clause that says again what the sentence has said, the small model's habit of
    pasting its passage after the answer: "The strike began in March, when the strike began over
    pay." -> "The strike began in March."; lists ("Elm Green, opened in 2019, Riverside…") stay."""
    for match in re.finditer(r",\s+", sentence):
        head, tail = sentence[: match.start()], sentence[match.end() :]
        if _content_pairs(head) & _content_pairs(tail):
            stop = sentence[-1] if sentence[-1] in ".!?" else "."
            return head.rstrip(" ,;:") + stop
    return sentence


_REFUSALS = re.compile(
    r"(articles?|evidence|text|passages?|context|sources?)\s+(?:do(?:es)?n[o’']t|do(?:es)? not|"
    r"did not|didn[’']t)\s+(?:answer|say|mention|state|specify|provide|contain|include|name)"
    r"|not (?:mentioned|specified|stated|provided|given|named) in|no information|"
    r"(?:cannot|can[’']t) (?:be )?(?:answer|determine|find)|i don[’']t know|" + re.escape(REFUSAL),
    re.IGNORECASE,
)


@dataclass
class ReplySentence:
    """One sentence of the reply: its text and the passage numbers it cites."""

    text: str
    cites: list[int] = field(default_factory=list)


def is_refusal(text: str) -> bool:
    """True when the model's reply says the evidence does not answer the question."""
    return bool(_REFUSALS.search(text))


def _trim_refusal(sentence: str) -> str:
    """Cut a refusal clause the model tacked onto an answer ("..., the articles don't say")."""
    match = _REFUSALS.search(sentence)
    if not match:
        return sentence
    kept = sentence[: match.start()]
    kept = re.sub(r"(,|;|\bbut|\bhowever|\bthe)\s*$", "", kept.strip(), flags=re.IGNORECASE).strip(
        " ,;"
    )
    return kept + "." if len(kept.split()) >= 3 else ""


class ModelRefused(Exception):
    """The reply holds a sentence that is only a refusal: the model says it has no answer."""


def _normalised(raw: str) -> str:
    """Markers written after a sentence's stop ("... soldiers. [1]") moved before it."""
    return _MARKERS_AFTER_STOP.sub(lambda m: f" {m.group(2).strip()}{m.group(1)} ", raw.strip())


def split_reply(raw: str) -> list[str]:
    """The reply's sentences, each with its markers."""
    text = _normalised(raw)
    return [text[a:b] for a, b in split_sentences(text)]


def complete_sentences(buffer: str) -> list[str]:
    """The sentences of a reply still being written that are finished: those followed by the
    start of another sentence (words, not only markers, which may still belong to them)."""
    text = _normalised(buffer)
    spans = split_sentences(text)
    if len(spans) < 2:
        return []
    rest = MARKERS.sub("", text[spans[-1][0] :])
    done = spans[:-1] if re.search(r"[A-Za-z]", rest) else spans[:-2]
    return [text[a:b] for a, b in done]


def parse_sentence(piece: str, valid: set[int]) -> ReplySentence | None:
    """One sentence of the reply: its text without markers or talk about the evidence, and the
    valid passage numbers it cites; None if nothing is left. ModelRefused if it only says that
    the evidence has no answer."""
    cites = [
        int(n)
        for group in MARKERS.findall(piece)
        for n in re.split(r"[,;]", group)
        if int(n) in valid
    ]
    clean = re.sub(r"\s+([.,;:!?])", r"\1", " ".join(MARKERS.sub("", piece).split()))
    trimmed = _trim_refusal(cut_echo(strip_meta(clean)))
    if clean and not trimmed:
        raise ModelRefused(clean)
    if not re.search(r"[A-Za-z0-9]", trimmed):
        return None
    return ReplySentence(trimmed, list(dict.fromkeys(cites)))
