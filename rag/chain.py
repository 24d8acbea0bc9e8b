"""Stage 10, chain: question -> (condense) -> retrieve -> prompt -> LLM -> verified `Answer`.

One path answers every question: `QA.stream` yields typed events — `Token`s as the model
writes (drafts, unchecked), a `Sentence` each time a sentence has passed the check (what a
reader may be shown), a `Retry` when the model is asked again, and the final `Answer` last —
and `QA.ask` is the last event of that stream. The CLI, the REST and SSE API and the chat page all go through it. The model calls
are LangChain runnables (prompt | chat model | parser).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Generator, Iterator

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable

from rag.citations import Verification, Verifier, refusal
from rag.llm.base import PromptCache
from rag.prompts import (
    ANSWER_PROMPT,
    CONDENSE_PROMPT,
    RETRY_PROMPT,
    ZERO_SHOT_PROMPT,
    format_evidence,
    format_history,
)
from rag.questions import Query
from rag.replies import ModelRefused, complete_sentences, is_refusal, split_reply
from rag.schema import Answer, Event, Evidence, Retry, Token

log = logging.getLogger(__name__)

_TAGS = re.compile(
    r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|$)|<!--.*?-->|</?[A-Za-z][^<>]*>", re.I | re.S
)
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\((?:[A-Za-z][\w+.-]*:|www\.|/|#)(?:[^()]|\([^()]*\))*\)")
RETRY_MIN_SCORE = 0.5  # best evidence score above which a refusal is questioned once


def plain_text(raw: str) -> str:
    """The model's reply without HTML tags, scripts or Markdown links/images (which it may copy
    from a question): answers are plain text, so no markup from a user reaches the page."""
    text = _MD_LINK.sub(r"\1", _TAGS.sub("", raw))
    return text if text == raw else re.sub(r"[ \t]+", " ", text)


def should_retry(raw: str, evidence: list[Evidence]) -> bool:
    """True when the model refused although a passage matched the question well."""
    return bool(evidence) and evidence[0].score >= RETRY_MIN_SCORE and is_refusal(raw)


def standalone_question(rewritten: str, question: str) -> str:
    """The condense step's reply as a question, or the user's own words when the small model
    answered instead of rewriting."""
    line = rewritten.strip().split("\n")[0].strip().strip('"')
    line = re.sub(r"^(standalone question:)\s*", "", line, flags=re.IGNORECASE)
    return line if 3 < len(line) <= 300 and line.endswith("?") else question


def last_answer(events: Iterator[Event]) -> Answer:
    """Drain an answer's event stream; its last event is the Answer."""
    answer = None
    for event in events:
        answer = event
    if not isinstance(answer, Answer):
        raise RuntimeError("An answer stream ended without its Answer.")
    return answer


class FairLock:
    """A lock granted in the order it was asked for (`threading.Lock` is not): a question waits
    behind those asked before it, whether they came through the API or the chat page."""

    def __init__(self) -> None:
        self._turn = threading.Condition()
        self._issued = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._turn:
            ticket = self._issued
            self._issued += 1
            self._turn.wait_for(lambda: self._serving == ticket)

    def __exit__(self, *exc: object) -> None:
        with self._turn:
            self._serving += 1
            self._turn.notify_all()


class QA:
    """Answers questions; one at a time on the LLM (a local model serves one request at once)."""

    def __init__(
        self,
        retriever: Callable[..., list[Evidence]],  # (question[, filters]) -> evidence
        llm: BaseChatModel,
        verifier: Verifier,
        max_question_chars: int = 2000,
        *,
        few_shot: bool = True,
        retry_refusals: bool = True,
    ) -> None:
        self.retriever = retriever
        self.llm = llm
        self.verifier = verifier
        self.max_question_chars = max_question_chars
        self.retry_refusals = retry_refusals
        self._prompt = ANSWER_PROMPT if few_shot else ZERO_SHOT_PROMPT
        parse = StrOutputParser()
        self._condense: Runnable[dict[str, str], str] = CONDENSE_PROMPT | llm | parse
        self._generate: Runnable[dict[str, str], str] = self._prompt | llm | parse
        self._retry: Runnable[dict[str, str], str] = RETRY_PROMPT | llm | parse
        self.lock = FairLock()

    def query(self, question: str | Query, history: object = None, filters: object = None) -> Query:
        """`question` (with `history`, `filters`) checked, or a Query as it is
        (QuestionError if bad)."""
        if isinstance(question, Query):
            return question
        return Query.parse(question, history, self.max_question_chars, filters)

    def warm(self) -> bool:
        """Have an embedded model read the answer prompt's fixed part (instructions, worked
        examples) now, so the first question is as quick as later ones. False, doing nothing,
        for a model without a local prompt cache (a server backend)."""
        if not isinstance(self.llm, PromptCache):
            return False
        with self.lock:
            self.llm.warm(self._prompt.format_messages(evidence="", question=""))
        return True

    def ask(self, question: str | Query, history: object = None) -> Answer:
        """Answer one question (with optional chat history): the last event of `stream`."""
        return last_answer(self.stream(question, history))

    def stream(self, question: str | Query, history: object = None) -> Iterator[Event]:
        """Yield `Token`s as the model writes, a `Retry` if it is asked again, then the
        verified `Answer`. The question is checked before the stream starts."""
        query = self.query(question, history)
        return self._locked(query)

    def _locked(self, query: Query) -> Iterator[Event]:
        with self.lock:
            yield from self._answer(query)

    def _answer(self, query: Query) -> Iterator[Event]:
        standalone = self._standalone(query)
        # Filters go only to a retriever that takes them (a plain function may not).
        evidence = (
            self.retriever(standalone, query.filters)
            if query.filters
            else self.retriever(standalone)
        )
        if not evidence:  # nothing relevant: do not let the model answer from memory
            yield refusal(standalone, evidence)
            return
        inputs = {"evidence": format_evidence(evidence), "question": standalone}
        check = self.verifier.session(standalone, evidence)
        refused = yield from self._checked(self._generate, inputs, check)
        if refused and self.retry_refusals and evidence[0].score >= RETRY_MIN_SCORE:
            yield Retry()  # refused despite a strong match: asked again, without that option
            check = self.verifier.session(standalone, evidence)
            refused = yield from self._checked(self._retry, inputs, check)
            self._rewarm()  # for the next question
        yield check.refused() if refused else check.answer()

    @staticmethod
    def _checked(
        step: Runnable[dict[str, str], str], inputs: dict[str, str], check: Verification
    ) -> Generator[Event, None, bool]:
        """Stream the model's reply: every token (a draft), and each sentence once it has
        passed the check. True when the model refused (its generation is then stopped)."""
        buffer, done = "", 0
        tokens = step.stream(inputs)
        try:
            for token in tokens:
                if not token:
                    continue
                buffer += token
                yield Token(token)
                pieces = complete_sentences(plain_text(buffer))
                for piece in pieces[done:]:
                    yield from check.add(piece)
                done = len(pieces)
            for piece in split_reply(plain_text(buffer))[done:]:
                yield from check.add(piece)
        except ModelRefused:
            return True
        finally:
            close = getattr(tokens, "close", None)
            if close is not None:
                close()  # a refusal mid-reply: the model stops writing
        return False

    def _standalone(self, query: Query) -> str:
        """A follow-up rewritten, with the chat history, into a question that stands alone."""
        if not query.history:
            return query.question
        rewritten = self._condense.invoke(
            {"history": format_history(query.history), "question": query.question}
        )
        self._rewarm()
        return standalone_question(rewritten, query.question)

    def _rewarm(self) -> None:
        """After a call with another prompt, let an embedded model put back its read prompt."""
        if isinstance(self.llm, PromptCache):
            self.llm.rewarm()


def warm_quietly(qa: QA) -> None:
    """`qa.warm()`, logging instead of raising: if it fails, the first question reads the
    fixed prompt itself. Run it in the background while the user has not asked yet."""
    try:
        if qa.warm():
            log.info("Prompt cache warmed")
    except Exception as exc:
        log.warning("Could not warm the prompt cache (%s); the first answer reads it", exc)
