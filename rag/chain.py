"""Stage 10, chain: question -> (condense) -> retrieve -> prompt -> LLM -> verified `Answer`.

`build_chain` returns a LangChain runnable (LCEL). `QA` wraps it with input checks and a
token stream for the chat page and the SSE API; both paths run the same steps.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator
from operator import itemgetter

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from rag.citations import Verifier, is_refusal, refusal
from rag.errors import QuestionError
from rag.prompts import (
    ANSWER_PROMPT,
    CONDENSE_PROMPT,
    RETRY_PROMPT,
    ZERO_SHOT_PROMPT,
    format_evidence,
    format_history,
)
from rag.schema import Answer, Evidence

log = logging.getLogger(__name__)

RETRY_MARK = "\f"  # in a token stream: forget the tokens so far, a second try follows
History = list[tuple[str, str]]  # (user question, assistant answer) pairs, oldest first


HISTORY_TURNS = 3  # turns shown to the condense step (see `format_history`)
HISTORY_ANSWER_CHARS = 1000  # with 3 turns of 2,000-char questions, fits the 4,096-token context
_TAGS = re.compile(
    r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|$)|<!--.*?-->|</?[A-Za-z][^<>]*>", re.I | re.S
)
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\((?:[A-Za-z][\w+.-]*:|www\.|/|#)(?:[^()]|\([^()]*\))*\)")


def _plain(text: str) -> str:
    """NFC, control and format characters turned into spaces, whitespace collapsed."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return " ".join(text.split())


def plain_text(raw: str) -> str:
    """The model's reply without HTML tags, scripts or Markdown links/images (which it may copy
    from a question): answers are plain text, so no markup from a user reaches the page."""
    text = _MD_LINK.sub(r"\1", _TAGS.sub("", raw))
    return text if text == raw else re.sub(r"[ \t]+", " ", text)


def clean_question(question: object, max_chars: int = 2000) -> str:
    """Normalise a user question or raise QuestionError saying how to ask instead."""
    if not isinstance(question, str):
        raise QuestionError("The question must be text.")
    text = _plain(question)
    if not text:
        raise QuestionError("The question is empty. Type a question about the articles.")
    if len(text) > max_chars:
        raise QuestionError(
            f"The question is {len(text):,} characters long; the limit is {max_chars:,}. "
            "Ask something shorter."
        )
    return text


def clean_history(history: object, max_chars: int = 2000) -> History:
    """The chat history as (question, answer) text pairs, its last turns cut to what the
    model's context holds; QuestionError if it is not a list of pairs of strings."""
    if not history:
        return []
    if not isinstance(history, (list, tuple)) or not all(
        isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(x, str) for x in item)
        for item in history
    ):
        raise QuestionError("The history must be a list of (question, answer) pairs of text.")
    return [
        (_plain(q)[:max_chars], _plain(a)[:HISTORY_ANSWER_CHARS])
        for q, a in list(history)[-HISTORY_TURNS:]
    ]


def _rewarm(llm: BaseChatModel) -> None:
    """After a call with another prompt, let an embedded model put back its read answer prompt."""
    rewarm = getattr(llm, "rewarm", None)
    if rewarm is not None:
        rewarm()


def _condense_step(llm: BaseChatModel) -> Runnable:
    condense = CONDENSE_PROMPT | llm | StrOutputParser()

    def run(inputs: dict) -> str:
        history = inputs.get("history") or []
        if not history:
            return inputs["question"]
        rewritten = condense.invoke(
            {"history": format_history(history), "question": inputs["question"]}
        )
        _rewarm(llm)
        line = rewritten.strip().split("\n")[0].strip().strip('"')
        line = re.sub(r"^(standalone question:)\s*", "", line, flags=re.IGNORECASE)
        # A small model sometimes answers instead of rewriting; keep the user's words then.
        return line if 3 < len(line) <= 300 and line.endswith("?") else inputs["question"]

    return RunnableLambda(run, name="condense")


RETRY_MIN_SCORE = 0.5  # best evidence score above which a refusal is questioned once


def should_retry(raw: str, evidence: list[Evidence]) -> bool:
    """True when the model refused although a passage matched the question well."""
    return bool(evidence) and evidence[0].score >= RETRY_MIN_SCORE and is_refusal(raw)


def build_chain(
    retriever: Callable[[str], list[Evidence]],
    llm: BaseChatModel,
    verifier: Verifier,
    *,
    few_shot: bool = True,
    retry_refusals: bool = True,
) -> Runnable:
    """The full pipeline as one runnable: {"question", "history"?} -> Answer."""
    generate = (ANSWER_PROMPT if few_shot else ZERO_SHOT_PROMPT) | llm | StrOutputParser()
    retry = RETRY_PROMPT | llm | StrOutputParser()

    def answer_or_refuse(inputs: dict) -> str:
        evidence = inputs["evidence"]
        if not evidence:
            return ""  # nothing relevant: do not let the model answer from memory
        prompt_inputs = {"evidence": format_evidence(evidence), "question": inputs["question"]}
        raw = generate.invoke(prompt_inputs)
        if retry_refusals and should_retry(raw, evidence):
            raw = retry.invoke(prompt_inputs)
            _rewarm(llm)  # for the next question
        return raw

    return (
        RunnablePassthrough.assign(question=_condense_step(llm))
        | RunnablePassthrough.assign(evidence=itemgetter("question") | RunnableLambda(retriever))
        | RunnablePassthrough.assign(raw=RunnableLambda(answer_or_refuse, name="generate"))
        | RunnableLambda(
            lambda x: verifier(x["question"], plain_text(x["raw"]), x["evidence"]), name="verify"
        )
    )


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
        retriever: Callable[[str], list[Evidence]],
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
        self.chain = build_chain(
            retriever, llm, verifier, few_shot=few_shot, retry_refusals=retry_refusals
        )
        self._condense = _condense_step(llm)
        self._prompt = ANSWER_PROMPT if few_shot else ZERO_SHOT_PROMPT
        self._generate = self._prompt | llm | StrOutputParser()
        self._retry = RETRY_PROMPT | llm | StrOutputParser()
        self.lock = FairLock()

    def warm(self) -> bool:
        """Have an embedded model read the answer prompt's fixed part (instructions, worked
        examples) now, so the first question is as quick as later ones. False, doing nothing,
        for a model without a local prompt cache (a server backend)."""
        warm = getattr(self.llm, "warm", None)
        if warm is None:
            return False
        with self.lock:
            warm(self._prompt.format_messages(evidence="", question=""))
        return True

    def ask(self, question: str, history: History | None = None) -> Answer:
        """Answer one question (with optional chat history)."""
        question = clean_question(question, self.max_question_chars)
        history = clean_history(history, self.max_question_chars)
        with self.lock:
            return self.chain.invoke({"question": question, "history": history})

    def stream(self, question: str, history: History | None = None) -> Iterator[str | Answer]:
        """Yield the model's tokens as they come, then the verified Answer last."""
        question = clean_question(question, self.max_question_chars)
        history = clean_history(history, self.max_question_chars)
        with self.lock:
            standalone = self._condense.invoke({"question": question, "history": history})
            evidence = self.retriever(standalone)
            if not evidence:
                yield refusal(standalone, evidence)
                return
            raw = ""
            inputs = {"evidence": format_evidence(evidence), "question": standalone}
            for token in self._generate.stream(inputs):
                raw += token
                yield token
            if self.retry_refusals and should_retry(raw, evidence):
                yield RETRY_MARK  # the UI clears the streamed refusal
                raw = ""
                for token in self._retry.stream(inputs):
                    raw += token
                    yield token
                _rewarm(self.llm)  # for the next question
            yield self.verifier(standalone, plain_text(raw), evidence)


def warm_quietly(qa: QA) -> None:
    """`qa.warm()`, logging instead of raising: if it fails, the first question reads the
    fixed prompt itself. Run it in the background while the user has not asked yet."""
    try:
        if qa.warm():
            log.info("Prompt cache warmed")
    except Exception as exc:
        log.warning("Could not warm the prompt cache (%s); the first answer reads it", exc)
