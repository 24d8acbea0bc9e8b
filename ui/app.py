"""The Gradio chat page ("/") and the compact embeddable widget ("/widget"): layout and callbacks.

All logic lives in `rag.service`; every callback here only moves values between components.
Conversation state is per browser session (`gr.State`), never global.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from rag.chain import RETRY_MARK
from rag.errors import RagError
from rag.render import (
    answer_markdown,
    empty_html,
    escape_markdown,
    find_citation,
    parse_ref,
    sources_html,
)
from rag.schema import Answer
from rag.service import LOADING, READY, ChatService
from rag.session import last_answer, restore_page, snapshot
from rag.web_guards import BEARER_HELP, bearer_ok

EXAMPLES = [
    "How many Indian soldiers were killed in the suicide bombing?",
    "Who announced the release of the captured pilot?",
    "What did India launch in response to the suicide bombing?",
]
LOAD_WAIT = 300.0  # seconds a question waits for the model to finish loading
LLM_GROUP = "llm"  # one concurrency group for every event that uses the LLM

CSS = """
.rag-status p { margin: 0; }
a.rag-cite { font-size: .85em; font-weight: 600; text-decoration: none; padding: 0 .2em;
  border-radius: 4px; background: var(--color-accent-soft); cursor: pointer; }
a.rag-cite:hover, a.rag-source:hover { text-decoration: underline; }
.rag-sources-list { margin: .3em 0; }
.rag-sources-list li { margin-bottom: .4em; }
.rag-standalone { font-size: .9em; color: var(--body-text-color-subdued); }
.rag-empty { color: var(--body-text-color-subdued); font-size: .9em; padding: .4em 0; }
.rag-article h3 { margin: .2em 0; }
.rag-article-text { white-space: pre-wrap; max-height: 420px; overflow-y: auto;
  border: 1px solid var(--border-color-primary); border-radius: 6px; padding: .6em; }
.rag-widget .rag-article-text { max-height: 220px; }
mark#rag-passage { background: #ffe066; color: #111; padding: 0 .1em; border-radius: 2px; }
body:has(.rag-widget) footer { display: none !important; }
.gradio-container .nav-holder { display: none !important; }
.rag-sources-list { list-style: none; padding-left: 0; }
#rag-notice { background: #fff4d6; color: #3b2f00; border-left: 4px solid #e0a400;
  border-radius: 4px; padding: .4em .7em; }
"""

# One capture-phase listener on the document turns a click on any "#cite-<turn>-<n>" link
# (the [n] markers in the chat and the sources panel) into this component's "cite" event.
CITE_JS = """
const handler = (event) => {
  const path = event.composedPath ? event.composedPath() : [event.target];
  for (const el of path) {
    if (el && el.tagName === 'A') {
      const href = el.getAttribute('href') || '';
      if (href.startsWith('#cite-')) {
        event.preventDefault();
        event.stopPropagation();
        trigger('cite', {ref: href.slice(6)});
      }
      return;
    }
  }
};
if (window.__ragCite) document.removeEventListener('click', window.__ragCite, true);
window.__ragCite = handler;
document.addEventListener('click', handler, true);
"""

# The conversation is saved in the tab's sessionStorage after every change (`saved` holds the
# snapshot), so that Gradio's reload after a lost connection, or the user's, loses nothing.
SAVE_JS = """(value) => {
  try { sessionStorage.setItem('rag-chat:' + location.pathname, value || ''); } catch (e) {}
  return [];
}"""

# On load: hand the saved snapshot to the server, with whether the connection was lost (Gradio
# shows its "Connection to the server was lost" toast, then reloads the page when it is back).
LOAD_JS = """() => {
  const key = 'rag-chat:' + location.pathname;
  let saved = '', lost = false;
  try {
    saved = sessionStorage.getItem(key) || '';
    lost = sessionStorage.getItem(key + ':lost') === '1';
    sessionStorage.removeItem(key + ':lost');
  } catch (e) {}
  if (!window.__ragLostWatch) {
    window.__ragLostWatch = new MutationObserver(() => {
      if (document.body.innerText.includes('Connection to the server was lost')) {
        try { sessionStorage.setItem(key + ':lost', '1'); } catch (e) {}
      }
    });
    window.__ragLostWatch.observe(document.body, {childList: true, subtree: true});
  }
  return [JSON.stringify({snapshot: saved, lost: lost})];
}"""

SCROLL_JS = """
watch('value', () => {
  const mark = element.querySelector('mark#rag-passage');
  if (mark) mark.scrollIntoView({block: 'center', behavior: 'smooth'});
});
"""


def build_blocks(service: ChatService) -> gr.Blocks:
    """The whole UI: the chat page at "/" and the widget page at "/widget"."""
    with gr.Blocks(title="Ask the news archive", analytics_enabled=False) as demo:
        gr.Navbar(visible=False)
        gr.Markdown("## Ask the news archive\nAnswers cite the article passages they rest on.")
        _chat(demo, service, compact=False)
        gr.api(_api_ask(service), api_name="ask", concurrency_limit=1, concurrency_id=LLM_GROUP)
    with demo.route("Widget", "/widget", show_in_navbar=False):
        gr.Navbar(visible=False)
        with gr.Column(elem_classes="rag-widget"):
            _chat(demo, service, compact=True)
    return demo


def _chat(demo: gr.Blocks, service: ChatService, compact: bool) -> None:
    """One chat: status line, chatbot, input row, sources panel, article viewer."""
    turns = gr.State([])  # [{"question", "answer": Answer dict | None, "error": str | None}]
    pending = gr.State("")
    saved = gr.Textbox(visible="hidden", elem_classes="rag-saved")  # snapshot for the tab
    status = gr.Markdown(service.status_markdown(), elem_classes="rag-status")
    notice = gr.Markdown(visible=False, elem_id="rag-notice", elem_classes="rag-notice")
    timer = gr.Timer(2.0, active=True)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            chatbot = gr.Chatbot(
                label="Chat",
                height=320 if compact else 480,
                latex_delimiters=[],
                feedback_options=None,
                buttons=["copy"],
                examples=[{"text": q} for q in EXAMPLES],
                placeholder="Ask a question about the articles, or pick an example.",
                elem_id="rag-chatbot",
            )
            with gr.Row():
                box = gr.Textbox(
                    placeholder="Ask about the articles…",
                    show_label=False,
                    lines=1,
                    max_lines=4,
                    scale=5,
                    elem_id="rag-question",
                    autofocus=not compact,
                )
                size = "sm" if compact else "lg"
                send = gr.Button("Ask", variant="primary", scale=1, min_width=60, size=size)
                new = gr.Button("New chat", scale=1, min_width=80, size=size)
        with gr.Column(scale=2, min_width=260):
            sources = gr.HTML(
                sources_html(None),
                js_on_load=CITE_JS,
                elem_id="rag-sources",
                label="Sources",
                show_label=True,
                container=True,
                padding=True,
            )
            viewer = gr.HTML(
                empty_html("The cited article opens here."),
                js_on_load=SCROLL_JS,
                elem_id="rag-viewer",
                label="Article",
                show_label=True,
                container=True,
                padding=True,
            )

    locked = [box, send]
    ask_outputs = [chatbot, turns, sources, status, saved]

    def add_question(question: str, turns: list[dict]) -> tuple:
        question = (question or "").strip()
        if not question:
            return gr.skip(), gr.skip(), "", gr.skip(), gr.skip(), gr.skip(), gr.skip()
        kept = snapshot(turns, question)
        return "", _messages(turns, question, None), question, kept, _hidden(), *_locks(False)

    def add_example(turns: list[dict], evt: gr.SelectData) -> tuple:
        value = evt.value
        question = value.get("text", "") if isinstance(value, dict) else str(value or "")
        return add_question(question, turns)

    def respond(question: str, turns: list[dict], request: gr.Request):
        skip = gr.skip()
        if not question:
            yield skip, skip, skip, skip, skip
            return
        turn = len(turns)
        history = [(t["question"], t["answer"]["answer"]) for t in turns if t.get("answer")]
        try:
            service.check_question(question)
            service.check_rate(_client(request))
            if service.state == LOADING:
                note = "*Model loading… your question is answered as soon as it is ready.*"
                yield _messages(turns, question, note), turns, skip, service.status_markdown(), skip
            text = ""
            for part in service.stream(question, history, wait=LOAD_WAIT, admitted=True):
                if isinstance(part, Answer):
                    turns = [*turns, {"question": question, "answer": part.to_json_dict()}]
                    status_now = service.status_markdown()
                    shown = sources_html(part, turn)
                    yield _messages(turns), turns, shown, status_now, snapshot(turns)
                    return
                if part == RETRY_MARK:  # the model is asked again: drop its streamed refusal
                    text = ""
                    continue
                text += part
                streamed = escape_markdown(text) + " ▌"
                yield _messages(turns, question, streamed), turns, skip, skip, skip
        except RagError as exc:
            error = service.describe(exc)
            turns = [*turns, {"question": question, "answer": None, "error": error}]
            yield _messages(turns), turns, skip, service.status_markdown(), snapshot(turns)

    def open_citation(turns: list[dict], evt: gr.EventData) -> str:
        ref = parse_ref(getattr(evt, "_data", {}).get("ref", ""))
        if ref is None or ref[0] >= len(turns) or not turns[ref[0]].get("answer"):
            return empty_html("That citation belongs to an earlier chat.")
        answer = Answer(**turns[ref[0]]["answer"])
        cite = find_citation(answer, ref[1])
        if cite is None:
            return empty_html("No such citation.")
        return service.article_html(cite.source, cite.start, cite.end, cite.n)

    def new_chat() -> tuple:
        viewer_text = empty_html("The cited article opens here.")
        return [], [], "", sources_html(None), viewer_text, snapshot([]), _hidden(), *_locks(True)

    def restore(payload: str) -> tuple:
        turns, message = restore_page(payload)
        shown = gr.Markdown(message, visible=True) if message else _hidden()
        found = last_answer(turns)
        last = sources_html(*found) if found else gr.skip()
        return _messages(turns), turns, snapshot(turns), shown, last

    def poll_status() -> tuple[str, Any]:
        state = service.state
        return service.status_markdown(), gr.Timer(active=state != READY)

    step1 = dict(
        fn=add_question,
        inputs=[box, turns],
        outputs=[box, chatbot, pending, saved, notice, *locked],
        queue=False,
        api_visibility="undocumented",
    )
    step2 = dict(
        fn=respond,
        inputs=[pending, turns],
        outputs=ask_outputs,
        show_progress_on=[chatbot],  # the queue position shows on the chat only
        concurrency_limit=1,
        concurrency_id=LLM_GROUP,
        api_visibility="undocumented",
    )
    runs = []
    for trigger in (box.submit, send.click):
        event = trigger(**step1).then(**step2)
        runs.append(event)
        event.then(lambda: _locks(True), None, locked, queue=False, api_visibility="private")
    example = chatbot.example_select(
        add_example,
        [turns],
        [box, chatbot, pending, saved, notice, *locked],
        queue=False,
        api_visibility="private",
    ).then(**step2)
    example.then(lambda: _locks(True), None, locked, queue=False, api_visibility="private")
    runs.append(example)
    reset = [chatbot, turns, pending, sources, viewer, saved, notice, *locked]
    new.click(new_chat, None, reset, cancels=runs, queue=False, api_visibility="private")
    chatbot.clear(new_chat, None, reset, cancels=runs, queue=False, api_visibility="private")
    sources.cite(open_citation, [turns], [viewer], queue=False, api_visibility="private")
    timer.tick(poll_status, None, [status, timer], queue=False, api_visibility="private")
    demo.load(poll_status, None, [status, timer], queue=False, api_visibility="private")
    saved.change(None, [saved], None, js=SAVE_JS, queue=False, api_visibility="private")
    demo.load(
        restore,
        [saved],
        [chatbot, turns, saved, notice, sources],
        js=LOAD_JS,
        queue=False,
        api_visibility="private",
    )


def _hidden() -> gr.Markdown:
    """An update that hides the notice line."""
    return gr.Markdown(visible=False)


def _locks(enabled: bool) -> tuple:
    return gr.Textbox(interactive=enabled), gr.Button(interactive=enabled)


def _messages(
    turns: list[dict], pending: str | None = None, partial: str | None = None
) -> list[dict]:
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


def _client(request: gr.Request | None) -> str:
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or "unknown"


def _api_ask(service: ChatService):
    def ask(
        question: str, history: list[list[str]] | None = None, request: gr.Request = None
    ) -> dict:
        """Answer a question about the articles; returns the same object as POST /api/ask.

        Like /api/*, it needs `Authorization: Bearer <token>` when RAG_API_TOKEN is set
        (gradio_client: `Client(url, headers={"Authorization": "Bearer ..."})`)."""
        from rag.service import normalize_history

        headers = getattr(request, "headers", None) or {}
        if not bearer_ok(headers.get("authorization"), service.api_token):
            raise gr.Error(BEARER_HELP, print_exception=False)
        try:
            service.check_rate(_client(request))
            answer = service.ask(question, normalize_history(history), admitted=True)
            return answer.to_json_dict()
        except RagError as exc:
            raise gr.Error(service.describe(exc), print_exception=False) from None

    return ask
