"""The chat's callbacks: plain methods that move values between the page's components.

The logic they call lives in `ui.service` (questions, the gate) and `ui.render` (HTML); each
callback can be tested without a browser. Conversation state is per browser session
(`gr.State`), never global: `turns` is a list of {"question", "answer": Answer dict | None,
"error": str | None}.
"""

from __future__ import annotations

import functools
import inspect
import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import gradio as gr

from rag.errors import ModelLoadingError, RagError
from rag.schema import Answer, Retry, Sentence, Token
from ui.gate import PAGE_HEADER
from ui.guards import request_id
from ui.render import (
    answer_markdown,
    empty_html,
    escape_markdown,
    find_citation,
    parse_ref,
    render_article,
    sources_html,
    status_markdown,
)
from ui.service import ChatService, Waiting, failure_message
from ui.session import last_answer, restore_page, snapshot

log = logging.getLogger(__name__)
LOAD_WAIT = 300.0  # seconds a question waits for the model to finish loading
VIEWER_EMPTY = "The cited article opens here."
Turns = list[dict[str, Any]]
F = TypeVar("F", bound=Callable[..., Any])


def masked(fn: F) -> F:
    """A callback whose unexpected errors reach the page as a request id to quote, never as
    exception text (the traceback goes to the log, under that id)."""

    def failure(args: tuple, kwargs: dict) -> gr.Error:
        found = [a for a in (*args, *kwargs.values()) if isinstance(a, gr.Request)]
        scope = getattr(getattr(found[0], "request", None), "scope", None) if found else None
        rid = request_id(scope) if scope else secrets.token_hex(6)
        log.exception("The page's %s failed (request id %s)", fn.__name__, rid)
        return gr.Error(failure_message(rid), print_exception=False)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception:
                raise failure(args, kwargs) from None

        return stream  # type: ignore[return-value]

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception:
            raise failure(args, kwargs) from None

    return call  # type: ignore[return-value]


def messages(turns: Turns, pending: str | None = None, partial: str | None = None) -> list[dict]:
    """Chatbot messages rebuilt from the session's turns (plus a question being answered)."""
    out: list[dict] = []
    for i, turn in enumerate(turns):
        out.append({"role": "user", "content": escape_markdown(turn["question"])})
        if turn.get("answer"):
            content = answer_markdown(Answer(**turn["answer"]), i)
        else:
            content = "**Error:** " + escape_markdown(turn.get("error") or "No answer.")
        out.append({"role": "assistant", "content": content})
    if pending:
        out.append({"role": "user", "content": escape_markdown(pending)})
        if partial is not None:
            out.append({"role": "assistant", "content": partial})
    return out


CHECKING = '<span class="rag-checking" aria-live="polite">checking the next sentence…</span>'


def checked_markdown(shown: list[Sentence], turn: int) -> str:
    """The sentences that passed the check so far, with their [n] links, and a note that the
    next one is being checked: nothing unchecked is ever on screen."""
    partial = Answer(
        answer=" ".join(s.text for s in shown),
        citations=[c for s in shown for c in s.citations],
    )
    body = answer_markdown(partial, turn) if shown else ""
    return f"{body} {CHECKING}".strip()


def client_of(request: gr.Request | None) -> str:
    """The client's address, for the rate limit."""
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or "unknown"


def header(request: gr.Request | None, name: str) -> str | None:
    """One header of the request that called a callback (for queued ones: the join's)."""
    headers = getattr(request, "headers", None) or {}
    return headers.get(name)


def waiting_note(waiting: Waiting) -> str:
    """What the chat shows while a question waits for the model."""
    n = waiting.ahead
    if not n:
        return "*Reading the articles…*"
    return f"*Waiting for the model: {n} question{'s' * (n != 1)} ahead of yours…*"


EMPTY_QUESTION = "Type a question first, then press Enter or Ask."


def hidden() -> Any:
    """An update that hides the notice line."""
    return gr.Markdown(visible=False)


def locks(enabled: bool) -> tuple[Any, Any]:
    """Updates that enable or disable the question box and the Ask button."""
    return gr.Textbox(interactive=enabled), gr.Button(interactive=enabled)


class ChatHandlers:
    """The callbacks of one chat (the page's or the widget's)."""

    def __init__(self, service: ChatService) -> None:
        self.service = service

    def status_line(self) -> str:
        """The status line's Markdown."""
        return status_markdown(self.service.status())

    @masked
    def add_question(self, question: str, turns: Turns) -> tuple[Any, ...]:
        """Show the question at once, lock the input, and hand it to `respond`."""
        question = (question or "").strip()
        if not question:  # say so, rather than nothing; the box keeps the focus
            skip = gr.skip()
            notice = gr.Markdown(EMPTY_QUESTION, visible=True)
            return skip, skip, "", skip, notice, skip, skip, skip
        kept = snapshot(turns, question)
        viewer = empty_html(VIEWER_EMPTY)  # the previous answer's article goes with it
        return "", messages(turns, question, None), question, kept, hidden(), *locks(False), viewer

    @masked
    def add_example(self, turns: Turns, evt: gr.SelectData) -> tuple[Any, ...]:
        """`add_question` for a clicked example."""
        value = evt.value
        question = value.get("text", "") if isinstance(value, dict) else str(value or "")
        return self.add_question(question, turns)

    @masked
    def respond(self, question: str, turns: Turns, request: gr.Request) -> Iterator[tuple]:
        """Stream the answer into the chat; the sources panel and the snapshot follow at the end."""
        skip = gr.skip()
        if not question:
            yield skip, skip, skip, skip, skip
            return
        history = [(t["question"], t["answer"]["answer"]) for t in turns if t.get("answer")]
        try:
            admission = self.service.admit(
                "page",
                client=client_of(request),
                question=question,
                history=history,
                ticket=header(request, PAGE_HEADER),
                waits_for_model=True,
            )
            if self.service.state == "loading":
                note = "*Model loading… your question is answered as soon as it is ready.*"
                yield messages(turns, question, note), turns, skip, self.status_line(), skip
            shown: list[Sentence] = []
            drafting = False
            for event in self.service.stream_with_places(admission, wait=LOAD_WAIT):
                if isinstance(event, Waiting):
                    yield messages(turns, question, waiting_note(event)), turns, skip, skip, skip
                    continue
                if isinstance(event, Answer):
                    done = [*turns, {"question": question, "answer": event.to_json_dict()}]
                    panel = sources_html(event, len(turns))
                    yield messages(done), done, panel, self.status_line(), snapshot(done)
                    return
                if isinstance(event, Retry):  # asked again: nothing was shown, nothing to drop
                    shown = []
                elif isinstance(event, Sentence):
                    shown.append(event)
                if isinstance(event, Token):
                    if drafting:
                        continue  # the draft is not shown: only that a sentence is coming
                    drafting = True
                if isinstance(event, Sentence | Token | Retry):
                    partial = checked_markdown(shown, len(turns))
                    yield messages(turns, question, partial), turns, skip, skip, skip
        except RagError as exc:
            error = self.service.describe(exc)
            failed = [*turns, {"question": question, "answer": None, "error": error}]
            yield messages(failed), failed, skip, self.status_line(), snapshot(failed)

    @masked
    def open_citation(self, turns: Turns, evt: gr.EventData) -> str:
        """The cited article, its passage highlighted, for a click on [n] or a source."""
        data = getattr(evt, "_data", None)
        ref = parse_ref(data.get("ref", "")) if isinstance(data, dict) else None
        if ref is None or ref[0] >= len(turns) or not turns[ref[0]].get("answer"):
            return empty_html("That citation belongs to an earlier chat.")
        cite = find_citation(Answer(**turns[ref[0]]["answer"]), ref[1])
        if cite is None:
            return empty_html("No such citation.")
        try:
            found = self.service.article(cite.source)
        except ModelLoadingError:
            return empty_html("The articles are still loading. Click the citation again soon.")
        if found is None:
            return empty_html(f"The article {cite.source} is not in the index any more.")
        return render_article(cite.source, *found, cite.start, cite.end, cite.n, cite)

    @masked
    def new_chat(self) -> tuple[Any, ...]:
        """Empty the chat, the sources and the viewer."""
        viewer = empty_html(VIEWER_EMPTY)
        return [], [], "", sources_html(None), viewer, snapshot([]), hidden(), *locks(True)

    @masked
    def restore(self, payload: str) -> tuple[Any, ...]:
        """The conversation the tab saved, with a notice if an answer was cut off."""
        turns, message = restore_page(payload)
        shown = gr.Markdown(message, visible=True) if message else hidden()
        found = last_answer(turns)
        last = sources_html(*found) if found else gr.skip()
        return messages(turns), turns, snapshot(turns), shown, last

    @masked
    def poll_status(self) -> tuple[str, Any]:
        """The status line, and the timer stopped once ready."""
        return self.status_line(), gr.Timer(active=self.service.state != "ready")

    @masked
    def api_ask(
        self,
        question: str,
        history: list[list[str]] | None = None,
        request: gr.Request | None = None,
    ) -> dict[str, Any]:
        """Answer a question about the articles; returns the same object as POST /api/ask.

        Like /api/*, it needs `Authorization: Bearer <token>` when RAG_API_TOKEN is set
        (gradio_client: `Client(url, headers={"Authorization": "Bearer ..."})`)."""
        try:
            admission = self.service.admit(
                "api",
                client=client_of(request),
                question=question,
                history=history,
                authorization=header(request, "authorization"),
            )
            return self.service.ask(admission).to_json_dict()
        except RagError as exc:
            raise gr.Error(self.service.describe(exc), print_exception=False) from None
