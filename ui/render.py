"""Rendering answers, sources and articles as HTML for the chat page and the widget.

Every piece of article text and model output is escaped: nothing from an article, a question
or the model can add markup or script to the page.
"""

from __future__ import annotations

import html
import re
import time
from urllib.parse import urlsplit

from rag.schema import Answer, Citation

_MARKER = re.compile(r"\[(\d+)\]")
_MD_SPECIAL = set("\\`*_[]#!|~$")


def escape_markdown(text: str) -> str:
    """Text that Markdown and HTML show literally (no tags, links or formatting)."""
    marked = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)
    return html.escape(marked, quote=False)


def cite_ref(turn: int, n: int) -> str:
    """The link target of citation n of answer number `turn`: "#cite-<turn>-<n>"."""
    return f"#cite-{turn}-{n}"


def parse_ref(ref: str) -> tuple[int, int] | None:
    """ "<turn>-<n>" (or "#cite-<turn>-<n>") -> (turn, n), or None if malformed."""
    m = re.fullmatch(r"(?:#cite-)?(\d{1,6})-(\d{1,4})", str(ref or "").strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def answer_markdown(answer: Answer, turn: int) -> str:
    """The answer for the chat, escaped, with each [n] marker a link to its citation."""
    known = {c.n for c in answer.citations}
    parts, last = [], 0
    for m in _MARKER.finditer(answer.answer):
        parts.append(escape_markdown(answer.answer[last : m.start()]))
        n = int(m.group(1))
        if n in known:
            parts.append(
                f'<a class="rag-cite" href="{cite_ref(turn, n)}" title="Show source {n}">[{n}]</a>'
            )
        else:
            parts.append(escape_markdown(m.group()))
        last = m.end()
    parts.append(escape_markdown(answer.answer[last:]))
    return "".join(parts)


def sources_html(answer: Answer | None, turn: int = 0) -> str:
    """The sources panel: standalone question, then one link per cited article passage."""
    if answer is None:
        return empty_html("Sources of the answer appear here. Click one to read the article.")
    rows = []
    if answer.question:
        question = html.escape(answer.question)
        rows.append(f'<p class="rag-standalone">Question answered: <q>{question}</q></p>')
    if answer.citations:
        rows.append(_source_list(answer.citations, turn))
    elif answer.closest:
        rows.append('<p class="rag-empty">No passage answers this. The closest ones:</p>')
        rows.append(_source_list(answer.closest, turn, closest=True))
    else:
        rows.append('<p class="rag-empty">No sources: the articles do not answer this.</p>')
    if answer.removed:
        dropped = "".join(f"<li>{html.escape(r)}</li>" for r in answer.removed)
        rows.append(
            f"<details><summary>{len(answer.removed)} unsupported sentence(s) removed"
            f"</summary><ul>{dropped}</ul></details>"
        )
    return f'<div class="rag-sources">{"".join(rows)}</div>'


def safe_url(url: str | None) -> str | None:
    """`url` if it is an absolute http(s) address (nothing else becomes a link), else None."""
    value = str(url or "").strip()
    parts = urlsplit(value)
    if parts.scheme.lower() in ("http", "https") and parts.netloc and not re.search(r"\s", value):
        return value
    return None


def about_html(outlet: str | None, date: str | None, url: str | None) -> str:
    """ "Outlet · date · original": the article's outlet and date, and a link to the original
    page where its address is known (escaped, http(s) only, opened in a new tab)."""
    parts = [
        f'<span class="rag-outlet">{html.escape(outlet)}</span>' if outlet else "",
        f'<span class="rag-date">{html.escape(date)}</span>' if date else "",
    ]
    if link := safe_url(url):
        parts.append(
            f'<a class="rag-original" href="{html.escape(link, quote=True)}" target="_blank" '
            'rel="noopener noreferrer nofollow">original</a>'
        )
    shown = " · ".join(p for p in parts if p)
    return f'<span class="rag-about">{shown}</span>' if shown else ""


def _source_list(cites: list[Citation], turn: int, closest: bool = False) -> str:
    items = "".join(
        f'<li><a class="rag-source{" rag-closest" if closest else ""}" '
        f'href="{cite_ref(turn, c.n)}">'
        f'<span class="rag-n">[{c.n}]</span> {html.escape(c.title)}</a>'
        f"<br>{about_html(c.outlet, c.date, c.url)}"
        f"{'<br>' if (c.outlet or c.date or safe_url(c.url)) else ''}"
        f'<code class="rag-file">{html.escape(c.source)}</code>{also_html(c)}'
        f'<blockquote class="rag-quote">{html.escape(short_quote(c.quote))}</blockquote></li>'
        for c in cites
    )
    return f'<ol class="rag-sources-list">{items}</ol>'


def also_html(cite: Citation) -> str:
    """ "Also reported in: Outlet (date), …": the story's other copies, escaped ("" if none)."""
    if not cite.also_in:
        return ""
    named = ", ".join(
        html.escape(o.outlet or o.source) + (f" ({html.escape(o.date)})" if o.date else "")
        for o in cite.also_in
    )
    return f'<br><span class="rag-also">Also reported in: {named}</span>'


def short_quote(quote: str, limit: int = 240) -> str:
    """The passage on one line, cut at a word near `limit` characters (with "…")."""
    flat = " ".join(quote.split())
    if len(flat) <= limit:
        return flat
    return flat[:limit].rsplit(" ", 1)[0] + "…"


def find_citation(answer: Answer, n: int) -> Citation | None:
    """Citation n of `answer`, or of its closest passages when it was a refusal."""
    return next((c for c in [*answer.citations, *answer.closest] if c.n == n), None)


def render_article(
    source: str,
    title: str,
    text: str,
    start: int,
    end: int,
    n: int | None = None,
    cite: Citation | None = None,
) -> str:
    """Escaped article HTML with text[start:end] wrapped in `<mark id="rag-passage">`; with
    the citation, its outlet, date and a link to the original page."""
    start = max(0, min(int(start), len(text)))
    end = max(start, min(int(end), len(text)))
    label = f"[{n}] " if n is not None else ""
    return (
        f'<div class="rag-article" data-source="{html.escape(source)}" '
        f'data-opened="{time.monotonic_ns()}">'
        f'<h3 class="rag-title">{html.escape(label + title)}</h3>'
        f"<p>{about_html(cite.outlet, cite.date, cite.url) + ' ' if cite else ''}"
        f'<code class="rag-file">{html.escape(source)}</code></p>'
        f'<div class="rag-article-text">{html.escape(text[:start])}'
        f'<mark id="rag-passage">{html.escape(text[start:end])}</mark>'
        f"{html.escape(text[end:])}</div></div>"
    )


def empty_html(message: str) -> str:
    """A muted one-line placeholder panel."""
    return f'<div class="rag-empty">{html.escape(message)}</div>'


def status_markdown(status: dict[str, str]) -> str:
    """The status line shown on the chat page (escaped Markdown), from `ChatService.status()`."""
    if status["status"] == "ready":
        return "**Ready.** Ask a question about the news articles."
    if status["status"] == "loading":
        return "**Model loading…** You can type your question; it is answered when ready."
    return "**Not ready:** " + escape_markdown(status["message"])
