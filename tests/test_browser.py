"""The chat page and the widget in a real headless Chromium against a real `rag serve`.

Embedding is checked the way an intranet page does it: a page served from another origin
holds an <iframe> of /widget; the browser itself enforces CSP frame-ancestors.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import OFF_RAMP
from tests.server_fixtures import (
    ROOT,
    ask_in_page,
    free_port,
    ingested_store,
    open_chat,
    ready_server,
)

pytest_plugins = ["tests.browser_fixtures"]
pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
QUESTION = "How many Indian soldiers were killed in the suicide bombing?"
EVIL = '<img src=x onerror="window.__xss=1"> what does <b>this</b> say?'

# Records the last assistant message each time the chat changes, to see the stream happen.
RECORD_STREAM = """() => {
  window.__snaps = [];
  const root = document.querySelector('#rag-chatbot');
  new MutationObserver(() => {
    const bots = root.querySelectorAll('[data-testid="bot"]');
    if (bots.length) window.__snaps.push(bots[bots.length - 1].innerText);
  }).observe(root, {subtree: true, childList: true, characterData: true});
}"""

MARK_IN_VIEW = """() => {
  const mark = document.querySelector('#rag-viewer mark#rag-passage');
  if (!mark) return false;
  const box = mark.closest('.rag-article-text').getBoundingClientRect();
  const r = mark.getBoundingClientRect();
  return r.top >= box.top - 1 && r.bottom <= box.bottom + 1 && r.top >= 0
    && r.bottom <= window.innerHeight;
}"""


@pytest.fixture(scope="module")
def server():
    with ready_server(store_dir=str(ingested_store())) as srv:
        yield srv


class _Intranet:
    """A static "intranet page" embedding the widget, served on host:port (another origin)."""

    def __init__(self, host: str, widget_url: str) -> None:
        body = (
            "<!doctype html><title>Intranet</title><h1>Intranet page</h1>"
            f'<iframe id="rag" src="{widget_url}" width="460" height="760"></iframe>'
        ).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((host, free_port(host)), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.e2e
def test_ask_stream_click_citation_and_see_the_passage(server, page):
    open_chat(page, server.url + "/")
    page.evaluate(RECORD_STREAM)
    ask_in_page(page, QUESTION)
    cite = page.locator("#rag-chatbot a.rag-cite").first
    cite.wait_for(timeout=240_000)

    # Only checked sentences reach the screen, one by one, with a notice while the next one is
    # checked: every snapshot is the start of the final answer, never a draft.
    snaps = page.evaluate("window.__snaps")
    final = page.locator("#rag-chatbot [data-testid='bot']").last.inner_text()
    assert "40" in final and "▌" not in final and "[1]" in final
    assert any("checking the next sentence" in s for s in snaps), snaps
    for snap in snaps:
        shown = " ".join(snap.replace("checking the next sentence…", "").split())
        if shown and shown != "Reading the articles…":
            assert " ".join(final.split()).startswith(shown), (snap, final)

    sources = page.locator("#rag-sources").inner_text()
    assert "Question answered" in sources and QUESTION in sources
    assert OFF_RAMP in sources and "Off-Ramp" in sources

    cite.click()
    mark = page.locator("#rag-viewer mark#rag-passage")
    mark.wait_for(timeout=30_000)
    assert "killed 40 Indian soldiers" in mark.inner_text()
    article = page.locator("#rag-viewer .rag-article")
    assert article.get_attribute("data-source") == OFF_RAMP
    page.wait_for_function(MARK_IN_VIEW, timeout=10_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-answer.png"))

    # Scroll the article away, click the source in the panel: the passage comes back into view.
    page.evaluate("document.querySelector('#rag-viewer .rag-article-text').scrollTop = 1e6")
    page.wait_for_function(f"() => !({MARK_IN_VIEW})()", timeout=5_000)
    page.locator("#rag-sources a.rag-source").first.click()
    page.wait_for_function(MARK_IN_VIEW, timeout=10_000)
    assert page.url.rstrip("/") == server.url  # the link did not navigate away

    # New chat forgets the conversation; markup in a question is shown, never run.
    page.get_by_role("button", name="New chat").click()
    page.wait_for_function(
        "() => !document.querySelector('#rag-chatbot [data-testid=\"bot\"]')", timeout=10_000
    )
    assert "Sources of the answer appear here" in page.locator("#rag-sources").inner_text()
    ask_in_page(page, EVIL)
    page.locator("#rag-chatbot [data-testid='bot']").last.wait_for(timeout=240_000)
    page.wait_for_function(
        "() => !document.querySelector('#rag-chatbot').innerText.includes('▌')"
        " && document.querySelector('#rag-question textarea').disabled === false",
        timeout=240_000,
    )
    user_text = page.locator("#rag-chatbot [data-testid='user']").last.inner_text()
    assert '<img src=x onerror="window.__xss=1">' in user_text and "<b>this</b>" in user_text
    assert page.locator("#rag-chatbot img[src='x']").count() == 0
    assert page.evaluate("window.__xss") is None


def test_widget_embeds_in_an_allowed_origin(server, page):
    intranet = _Intranet("127.0.0.1", server.url + "/widget")  # another port: another origin
    try:
        page.goto(intranet.url)
        frame = page.frame_locator("#rag")
        frame.locator("#rag-question textarea").wait_for(timeout=60_000)
        frame.locator("#rag-sources").wait_for(timeout=30_000)  # the panels render a bit later
        assert frame.locator("#rag-sources").count() == 1
        assert frame.locator("#rag-viewer").count() == 1
        assert frame.locator(".rag-widget").count() == 1
        assert not any("frame-ancestors" in line for line in page.console_lines)
    finally:
        intranet.close()


def test_widget_is_refused_by_the_browser_on_other_origins(server, page):
    intranet = _Intranet("127.0.0.2", server.url + "/widget")  # not in allowed_origins
    try:
        page.goto(intranet.url)
        frame = page.frame_locator("#rag")
        # Instead of the browser's bare "refused to connect": what the admin must change.
        frame.locator("h1").wait_for(timeout=30_000)
        told = frame.locator("body").inner_text()
        assert "RAG_ALLOWED_ORIGINS" in told and intranet.url.rstrip("/").split("/")[2] in told
        assert frame.locator("#rag-question").count() == 0  # no part of the widget
        # Without the Referer to name the page, the browser refuses the frame (CSP).
        page.goto(intranet.url)
        page.evaluate("document.querySelector('#rag').referrerPolicy = 'no-referrer'")
        page.evaluate("document.querySelector('#rag').src = document.querySelector('#rag').src")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
            "frame-ancestors" in line for line in page.console_lines
        ):
            page.wait_for_timeout(200)
        refusals = [line for line in page.console_lines if "frame-ancestors" in line]
        assert refusals, page.console_lines
        assert "blocked" in refusals[0] or "Refused" in refusals[0], refusals
        assert page.frame_locator("#rag").locator("#rag-question").count() == 0
    finally:
        intranet.close()
