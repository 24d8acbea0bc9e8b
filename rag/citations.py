"""Stage 9, citations: check each sentence of the model's reply against the passages it cites,
resolve its [n] markers, and keep a verdict for every sentence.

A sentence is shown only if, in this order:
1. it says something beyond restating the question;
2. its names and numbers are in the passages it cites (rag.claims, rag.numbers) — it may be
   moved to other passages of *one* article that hold them, never stitched across articles —
   and in the roles the passages give them (rag.roles);
3. the cited passages state it: the trained claim check (rag.support) scores it at least
   `support_min` (without that model: embedding similarity, the older test);
and the answer as a whole is given only if one of its sentences gives what the question asks
(rag.answerability). Otherwise the answer is the refusal, with the closest passages.

`Verification` does this sentence by sentence while the model writes, so each sentence can be
shown once it has passed; `Verifier.verify` checks a whole reply the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rag.answerability import answers
from rag.claims import adds_content, miscounted, missing_facts
from rag.embeddings.base import SentenceEncoder
from rag.prompts import REFUSAL
from rag.replies import ModelRefused, ReplySentence, is_refusal, parse_sentence, split_reply
from rag.roles import swapped_roles
from rag.schema import Answer, Check, Citation, Copy, Evidence, Sentence
from rag.support import SupportModel

CLOSEST_SHOWN = 3  # passages shown with a refusal
# Retrieval score a cited passage needs before the question's own names may stand in for names
# it lacks. Every answerable dev-set question has a passage scoring 0.43 or more; the passage
# behind "Samoa won the 2022 FIFA World Cup" ("Samoa won the plate title") scored 0.35.
ASKED_WORDS_MIN_SCORE = 0.4
SHORT_CLAIM_WORDS = 8  # a shorter sentence makes its claim together with the question
# Where a passage's sentence joins two statements ("The UN called for calm, while China offered
# to mediate"), a claim may state one of them: it is compared with each clause too.
_CLAUSE_BREAK = re.compile(
    r"\s*[;:]\s+|,\s+(?=(?:while|whereas|but|and|although|though|as|after|before|since)\b)"
    r"|\s+[-–—]\s+"
)
CLAUSE_MIN_WORDS = 5

__all__ = ["Verification", "Verifier", "format_answer", "is_refusal", "refusal", "to_citation"]


class Verifier:
    """Turns the model's reply plus the evidence into a checked, cited `Answer`."""

    def __init__(
        self,
        embeddings: SentenceEncoder,
        support_threshold: float = 0.45,
        *,
        support: SupportModel | None = None,
        support_min: float = 0.5,
        articles: Callable[[str], str | None] | None = None,
    ) -> None:
        self.embeddings = embeddings
        self.support_threshold = support_threshold  # embedding similarity to pick passages
        self.support = support
        self.support_min = support_min
        self.articles = articles or (lambda source: None)

    def __call__(self, question: str, raw: str, evidence: list[Evidence]) -> Answer:
        """Alias of `verify`."""
        return self.verify(question, raw, evidence)

    def session(self, question: str, evidence: list[Evidence]) -> Verification:
        """A check of one reply, fed sentence by sentence (`Verification.add`)."""
        return Verification(self, question, evidence)

    def verify(self, question: str, raw: str, evidence: list[Evidence]) -> Answer:
        """Check a whole reply: the supported sentences, citations renumbered from 1."""
        check = self.session(question, evidence)
        try:
            for piece in split_reply(raw):
                check.add(piece)
        except ModelRefused:
            return check.refused()
        return check.answer()


@dataclass
class Verification:
    """One reply's check, sentence by sentence. Kept sentences are held back until one of them
    gives what the question asks, so nothing shown is ever withdrawn."""

    verifier: Verifier
    question: str
    evidence: list[Evidence]
    checks: list[Check] = field(default_factory=list)
    shown: list[Sentence] = field(default_factory=list)
    _held: list[tuple[ReplySentence, Check]] = field(default_factory=list)
    _numbers: dict[int, int] = field(default_factory=dict)  # evidence n -> answer [n]
    _vectors: np.ndarray | None = None
    _owners: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.by_n = {e.n: e for e in self.evidence}

    def add(self, piece: str) -> list[Sentence]:
        """Check one sentence of the reply (with its markers); return the sentences now ready
        to show. ModelRefused if the reply so far is only a refusal."""
        try:
            sentence = parse_sentence(piece, set(self.by_n))
        except ModelRefused:
            if not self._held and not self.shown:
                raise
            self.checks.append(Check(sentence=piece, verdict="removed", reason="a refusal"))
            return []
        if sentence is None or not self.evidence:
            return []
        check = self._check(sentence)
        self.checks.append(check)
        if check.verdict != "supported":
            return []
        self._held.append((sentence, check))
        if not self.shown and not any(c.answers for _, c in self._held):
            return []
        ready = [self._show(s, c) for s, c in self._held]
        self._held.clear()
        return ready

    def answer(self) -> Answer:
        """The checked answer: the shown sentences, or the refusal when none answers."""
        for _, check in self._held:  # kept, but the answer never said what was asked
            check.verdict, check.reason = "removed", "does not give what the question asks"
        self._held.clear()
        removed = [f"{c.sentence} ({c.reason})" for c in self.checks if c.verdict == "removed"]
        if not self.shown:
            answer = refusal(self.question, self.evidence)
            answer.removed, answer.checks = removed, self.checks
            return answer
        citations = [to_citation(new, self.by_n[old]) for old, new in self._numbers.items()]
        return Answer(
            answer=" ".join(s.text for s in self.shown),
            citations=citations,
            question=self.question,
            removed=removed,
            checks=self.checks,
        )

    def refused(self) -> Answer:
        """The refusal, when the model said it has no answer."""
        answer = refusal(self.question, self.evidence)
        answer.checks = self.checks
        return answer

    # ---- one sentence --------------------------------------------------------------------

    def _check(self, sentence: ReplySentence) -> Check:
        def removed(reason: str, score: float | None = None) -> Check:
            return Check(sentence=sentence.text, verdict="removed", reason=reason, score=score)

        if not adds_content(sentence.text, self.question):
            return removed("restates the question")
        reason = self._cite(sentence)
        if reason:
            return removed(reason)
        score = self._best_support(sentence)
        if score < self._floor():
            return removed("the cited passage does not state this", score)
        passages = self._text(sentence.cites)
        article = self.verifier.articles(self.by_n[sentence.cites[0]].source) or ""
        title = self.by_n[sentence.cites[0]].title
        gives = answers(self.question, sentence.text, passages, f"{title} {article}") is None
        return Check(sentence=sentence.text, verdict="supported", score=score, answers=gives)

    def _floor(self) -> float:
        return (
            self.verifier.support_min if self.verifier.support else self.verifier.support_threshold
        )

    def _best_support(self, sentence: ReplySentence) -> float:
        """How well the cited passages state the sentence; with the claim check, the cited
        passages together or one other passage of the same article (the model often cites
        the wrong number), whichever states it best — the citations follow."""
        text = sentence.text
        claim = text if len(text.split()) >= SHORT_CLAIM_WORDS else f"{self.question} {text}"
        if self.verifier.support is None:
            cited = self._text(sentence.cites)
            texts = [cited, *clauses(cited)]
            vectors = np.asarray(self.verifier.embeddings.embed_documents([claim, *texts]))
            return round(float(np.max(vectors[1:] @ vectors[0])), 4)
        source = self.by_n[sentence.cites[0]].source
        options = [sentence.cites] + [
            [e.n] for e in self.evidence if e.source == source and [e.n] != sentence.cites
        ]
        options = [o for o in options if not missing_facts(text, self._text(o), self.question)]
        scores = self.verifier.support.scores([(claim, self._text(o)) for o in options])
        best = max(range(len(options)), key=lambda i: scores[i])
        sentence.cites = options[best]
        return round(scores[best], 4)

    def _similarities(self, claim: str) -> np.ndarray:
        """The claim's similarity to each passage: to the passage or, better, to one of its
        clauses."""
        if self._vectors is None:
            texts, owners = [], []
            for i, e in enumerate(self.evidence):
                for text in [e.text, *clauses(e.text)]:
                    texts.append(text)
                    owners.append(i)
            self._vectors = np.asarray(self.verifier.embeddings.embed_documents(texts))
            self._owners = np.asarray(owners)
        vector = np.asarray(self.verifier.embeddings.embed_query(claim))
        sims = np.full(len(self.evidence), -1.0)
        assert self._owners is not None  # set with the vectors
        np.maximum.at(sims, self._owners, self._vectors @ vector)
        return sims

    def _cite(self, sentence: ReplySentence) -> str | None:
        """Fix the sentence's citations in place; return why it cannot stand, or None."""
        text = sentence.text
        claim = text if len(text.split()) >= SHORT_CLAIM_WORDS else f"{self.question} {text}"
        sims = self._similarities(claim)
        floor = self.verifier.support_threshold
        order = [self.evidence[i].n for i in np.argsort(-sims)]
        sim_of = {e.n: float(s) for e, s in zip(self.evidence, sims, strict=True)}
        if self.verifier.support is not None:  # it decides; similarity only picks passages
            cited = sentence.cites or order[:1]
        else:
            cited = [n for n in sentence.cites if sim_of[n] >= floor]
            if not cited:
                if sim_of[order[0]] < floor:
                    return "not supported by any passage"
                cited = [order[0]]
        missing = missing_facts(text, self._text(cited), _asked(self.question, cited, self.by_n))
        if missing:
            # The names may sit in other passages (the small model often cites the wrong
            # number): take the article whose on-topic passages hold them all. Never several
            # articles: "Samoa won the 2022 FIFA World Cup" must not pass by stitching "Samoa
            # won the plate title" in one article to "the FIFA World Cup" in another.
            for source in dict.fromkeys(self.by_n[n].source for n in order):
                pool = [n for n in order if self.by_n[n].source == source
                        and (n in cited or sim_of[n] >= floor * 0.8)]  # fmt: skip
                if pool:
                    chosen, left = _cover(text, pool, cited, self.by_n, self.question)
                    if not left:
                        cited, missing = chosen, []
                        break
        if not missing:
            missing = miscounted(text, self._text(cited))
        if missing:
            return "names or numbers not in the articles: " + ", ".join(missing)
        swapped = swapped_roles(text, self._text(cited))
        if swapped:
            return "the passage gives these names other roles: " + swapped[0]
        sentence.cites = cited
        return None

    def _text(self, numbers: list[int]) -> str:
        return " ".join(self.by_n[n].text for n in numbers)

    def _show(self, sentence: ReplySentence, check: Check) -> Sentence:
        """The sentence with its markers renumbered in order of first citation."""
        marks = []
        for n in sentence.cites:
            self._numbers.setdefault(n, len(self._numbers) + 1)
            marks.append(f"[{self._numbers[n]}]")
        check.citations = [self._numbers[n] for n in sentence.cites]
        text = sentence.text
        body, stop = (text[:-1], text[-1]) if text[-1] in ".!?" else (text, ".")
        shown = Sentence(
            text=f"{body.rstrip()} {''.join(marks)}{stop}",
            citations=[to_citation(self._numbers[n], self.by_n[n]) for n in sentence.cites],
            check=check,
        )
        self.shown.append(shown)
        return shown


def _asked(question: str, passages: list[int], by_n: dict[int, Evidence]) -> str:
    """The question, whose names may stand in for names the passages lack ("UK" in the
    question, not in the passage about UK visa officers), if the passages are about it."""
    return question if max(by_n[n].score for n in passages) >= ASKED_WORDS_MIN_SCORE else ""


def _cover(
    sentence: str, pool: list[int], cited: list[int], by_n: dict[int, Evidence], question: str
) -> tuple[list[int], list[str]]:
    """Passages of `pool` (the already cited ones first) that hold the sentence's names and
    numbers, and the names still missing."""
    chosen = [n for n in pool if n in cited] or pool[:1]
    asked = _asked(question, pool, by_n)
    missing = missing_facts(sentence, " ".join(by_n[n].text for n in chosen), asked)
    for n in pool:
        if not missing:
            break
        if n not in chosen:
            still = missing_facts(" ".join(missing), by_n[n].text)
            if len(still) < len(missing):
                chosen.append(n)
                missing = still
    return chosen, missing


def refusal(question: str, evidence: list[Evidence]) -> Answer:
    """The answer given when the articles do not answer the question.

    It carries no citations (it claims nothing), but shows the closest passages, if any were
    relevant enough to retrieve, so the reader can judge for themselves.
    """
    closest = [to_citation(i, e) for i, e in enumerate(evidence[:CLOSEST_SHOWN], start=1)]
    return Answer(answer=REFUSAL, citations=[], question=question, refused=True, closest=closest)


def to_citation(n: int, e: Evidence) -> Citation:
    """An evidence passage as a numbered citation, with its article's date, outlet, URL and
    author where known."""
    return Citation(
        n=n,
        source=e.source,
        title=e.title,
        quote=e.text,
        start=e.start,
        end=e.end,
        date=e.date or None,
        outlet=e.outlet or None,
        url=e.url or None,
        author=e.author or None,
        also_in=[
            Copy(
                source=c["source"],
                title=c["title"],
                outlet=c["outlet"] or None,
                date=c["date"] or None,
            )
            for c in e.also_in
        ],
    )


def clauses(text: str) -> list[str]:
    """The clauses of `text` worth comparing alone (at least CLAUSE_MIN_WORDS words; none when
    the text is one clause)."""
    parts = [p.strip() for p in _CLAUSE_BREAK.split(text)]
    parts = [p for p in parts if len(p.split()) >= CLAUSE_MIN_WORDS]
    return parts if len(parts) > 1 else []


def format_answer(answer: Answer) -> str:
    """Answer text followed by its numbered sources (or, on a refusal, the closest passages)."""
    lines = [answer.answer]
    for heading, cites, mark in (
        ("Sources:", answer.citations, "[{}]"),
        ("Closest passages (they do not answer the question):", answer.closest, "({})"),
    ):
        if cites:
            lines += ["", heading]
        for c in cites:
            about = ", ".join(x for x in (c.outlet, c.date) if x)
            lines.append(
                f"  {mark.format(c.n)} {c.title}{f' ({about})' if about else ''} "
                f"({c.source}, chars {c.start}-{c.end})"
            )
            if c.url:
                lines.append(f"      {c.url}")
            if c.also_in:
                named = "; ".join(
                    ", ".join(x for x in (o.outlet, o.date, o.source) if x) for o in c.also_in
                )
                lines.append(f"      also reported in: {named}")
            lines.append(f"      “{' '.join(c.quote.split())}”")
    return "\n".join(lines)
