"""The Gradio chat page ("/") and the compact embeddable widget ("/widget"): layout and wiring.

The callbacks are `ui.chat.ChatHandlers`; this module only places components and connects
their events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import gradio as gr

from rag.errors import SettingsError
from rag.settings import Settings
from ui.chat import VIEWER_EMPTY, ChatHandlers, locks
from ui.render import empty_html, escape_markdown, sources_html
from ui.service import ChatService

EXAMPLES = [
    "How many Indian soldiers were killed in the suicide bombing?",
    "Who announced the release of the captured pilot?",
    "What did India launch in response to the suicide bombing?",
]
LLM_GROUP = "llm"  # one concurrency group for every event that uses the LLM

CSS = """
.rag-status p { margin: 0; }
a.rag-cite { font-size: .85em; font-weight: 600; text-decoration: none; padding: 0 .1em;
  font-family: inherit; letter-spacing: 0;  /* no gap before the final period: "[1]." */
  border-radius: 4px; background: var(--color-accent-soft); cursor: pointer; }
a.rag-cite:hover, a.rag-source:hover { text-decoration: underline; }
.rag-sources-list { margin: .3em 0; }
.rag-sources-list li { margin-bottom: .4em; }
.rag-standalone { font-size: .9em; color: var(--body-text-color-subdued); }
.rag-checking { font-size: .85em; font-style: italic; color: var(--body-text-color-subdued); }
.rag-empty { color: var(--body-text-color-subdued); font-size: .9em; padding: .4em 0; }
.rag-article h3 { margin: .2em 0; }
.rag-article-text { white-space: pre-wrap; max-height: 420px; overflow-y: auto;
  border: 1px solid var(--border-color-primary); border-radius: 6px; padding: .6em; }
.rag-widget .rag-article-text { max-height: 220px; }
mark#rag-passage { background: #ffe066; color: #111; padding: 0 .1em; border-radius: 2px; }
body:has(.rag-widget) footer { display: none !important; }
.gradio-container .nav-holder { display: none !important; }
.rag-sources-list { list-style: none; padding-left: 0; }
.rag-about { font-size: .85em; color: var(--body-text-color-subdued); }
a.rag-original { font-weight: 600; }
.rag-quote { margin: .2em 0 0 .4em; padding-left: .6em; font-size: .9em;
  border-left: 3px solid var(--border-color-primary); color: var(--body-text-color-subdued); }
/* WCAG AA contrast (4.5:1) for hints, labels, placeholders and the Ask button; Gradio's
   defaults are 1.9:1 and 2.8:1 on white. */
.gradio-container { --body-text-color-subdued: #5b5b66; --input-placeholder-color: #5b5b66;
  --block-label-text-color: #4b4b55; --block-info-text-color: #5b5b66;
  --button-primary-background-fill: #b93d0a; --button-primary-background-fill-hover: #9a3412;
  --button-primary-text-color: #ffffff; --button-primary-border-color: #b93d0a; }
.dark .gradio-container { --body-text-color-subdued: #b8b8c2; --input-placeholder-color: #b8b8c2;
  --block-label-text-color: #c4c4cc; --block-info-text-color: #b8b8c2; }
.gradio-container footer, .gradio-container footer a, .gradio-container .show-api {
  color: var(--body-text-color-subdued) !important; }
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

# In the page's <head>: Gradio's chat examples are buttons in a role="list" (an ARIA error for
# screen readers); they become a labelled group.
HEAD = """<script>(() => {
  const fix = () => document.querySelectorAll('.examples[role="list"]').forEach((el) => {
    el.setAttribute('role', 'group');
    el.setAttribute('aria-label', 'Example questions');
  });
  new MutationObserver(fix).observe(document.documentElement, {childList: true, subtree: true});
})();</script>"""

# After an answer, the focus goes back to the question box (it was disabled meanwhile).
FOCUS_JS = "() => { document.querySelector('#rag-question textarea')?.focus(); }"

SCROLL_JS = """
watch('value', () => {
  const mark = element.querySelector('mark#rag-passage');
  if (mark) mark.scrollIntoView({block: 'center', behavior: 'smooth'});
});
"""


def contrast_with_white(color: str) -> float:
    """WCAG contrast ratio of white text on `color` ("#rrggbb")."""
    channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 1.05 / (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05)


def widget_css(settings: Settings) -> str:
    """The widget's accent colour (RAG_WIDGET_COLOR) as CSS; SettingsError if white text on
    it would be hard to read."""
    color = settings.widget_color
    if not color:
        return ""
    ratio = contrast_with_white(color)
    if ratio < 4.5:
        raise SettingsError(
            f"RAG_WIDGET_COLOR={color} gives white text a contrast of only {ratio:.1f}:1; "
            "readable text needs 4.5:1. Choose a darker colour (e.g. #1d4ed8)."
        )
    names = ("background-fill", "background-fill-hover", "border-color")
    props = " ".join(f"--button-primary-{n}: {color};" for n in names)
    return f"\n.gradio-container .rag-widget {{ {props} --color-accent: {color}; }}"


def build_blocks(service: ChatService) -> gr.Blocks:
    """The whole UI: the chat page at "/" and the widget page at "/widget"."""
    handlers = ChatHandlers(service)
    with gr.Blocks(title="Ask the news archive", analytics_enabled=False) as demo:
        gr.Navbar(visible=False)  # type: ignore[attr-defined]
        gr.Markdown("## Ask the news archive\nAnswers cite the article passages they rest on.")
        _wire(demo, _layout(handlers, compact=False), handlers)
        gr.api(  # type: ignore[attr-defined]
            handlers.api_ask, api_name="ask", concurrency_limit=None, concurrency_id=LLM_GROUP
        )
    with demo.route("Widget", "/widget", show_in_navbar=False):
        gr.Navbar(visible=False)  # type: ignore[attr-defined]
        with gr.Column(elem_classes="rag-widget"):
            gr.Markdown(f"### {escape_markdown(service.settings.widget_title)}")
            _wire(demo, _layout(handlers, compact=True), handlers)
    return demo


@dataclass
class ChatParts:
    """The components of one chat."""

    turns: Any
    pending: Any
    saved: Any
    status: Any
    notice: Any
    timer: Any
    chatbot: Any
    box: Any
    send: Any
    new: Any
    sources: Any
    viewer: Any


def _layout(handlers: ChatHandlers, compact: bool) -> ChatParts:
    """One chat: status line, chatbot, input row, sources panel, article viewer."""
    turns, pending = gr.State([]), gr.State("")
    saved = gr.Textbox(visible="hidden", elem_classes="rag-saved")  # snapshot for the tab
    status = gr.Markdown(handlers.status_line(), elem_classes="rag-status")
    notice = gr.Markdown(visible=False, elem_id="rag-notice", elem_classes="rag-notice")
    timer = gr.Timer(2.0, active=True)
    size: Literal["sm", "lg"] = "sm" if compact else "lg"
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
                    label="Your question about the articles",  # its accessible name
                    placeholder="Ask about the articles…",
                    show_label=False,
                    lines=1,
                    max_lines=4,
                    scale=5,
                    elem_id="rag-question",
                    autofocus=not compact,
                )
                send = gr.Button("Ask", variant="primary", scale=1, min_width=60, size=size)
                new = gr.Button("New chat", scale=1, min_width=80, size=size)
        with gr.Column(scale=2, min_width=260):
            sources = _panel(sources_html(None), CITE_JS, "rag-sources", "Sources")
            viewer = _panel(empty_html(VIEWER_EMPTY), SCROLL_JS, "rag-viewer", "Article")
    return ChatParts(
        turns, pending, saved, status, notice, timer, chatbot, box, send, new, sources, viewer
    )


def _panel(value: str, js: str, elem_id: str, label: str) -> gr.HTML:
    return gr.HTML(
        value,
        js_on_load=js,
        elem_id=elem_id,
        label=label,
        show_label=True,
        container=True,
        padding=True,
    )


def _wire(demo: gr.Blocks, c: ChatParts, h: ChatHandlers) -> None:
    """Connect one chat's events to its callbacks. Only `respond` (and the /ask endpoint) use
    the LLM, in one concurrency group that Gradio does not bound: the gate does (ui.gate), so
    a question starts at once and is admitted or refused there, never kept in Gradio's queue.
    Every handler is private: not callable by Gradio's clients, and refused without the page's
    ticket (ui.gradio_routes)."""
    locked = [c.box, c.send]
    private: dict[str, Any] = {"queue": False, "api_visibility": "private"}
    added = [c.box, c.chatbot, c.pending, c.saved, c.notice, *locked, c.viewer]
    step1 = dict(fn=h.add_question, inputs=[c.box, c.turns], outputs=added, **private)
    step2 = dict(
        fn=h.respond,
        inputs=[c.pending, c.turns],
        outputs=[c.chatbot, c.turns, c.sources, c.status, c.saved],
        show_progress_on=[c.chatbot],
        concurrency_limit=None,
        concurrency_id=LLM_GROUP,
        api_visibility="private",
    )
    runs = [trigger(**step1).then(**step2) for trigger in (c.box.submit, c.send.click)]
    runs.append(c.chatbot.example_select(h.add_example, [c.turns], added, **private).then(**step2))
    for run in runs:
        run.then(lambda: locks(True), None, locked, **private).then(None, js=FOCUS_JS, **private)
    reset = [c.chatbot, c.turns, c.pending, c.sources, c.viewer, c.saved, c.notice, *locked]
    c.new.click(h.new_chat, None, reset, cancels=runs, **private)
    c.chatbot.clear(h.new_chat, None, reset, cancels=runs, **private)
    c.sources.cite(h.open_citation, [c.turns], [c.viewer], **private)
    c.timer.tick(h.poll_status, None, [c.status, c.timer], **private)
    demo.load(h.poll_status, None, [c.status, c.timer], **private)
    c.saved.change(None, [c.saved], None, js=SAVE_JS, **private)
    demo.load(h.restore, [c.saved], [c.chatbot, c.turns, c.saved, c.notice, c.sources],
              js=LOAD_JS, **private)  # fmt: skip
