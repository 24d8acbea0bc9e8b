"""Accessibility of the chat page and the widget in a real Chromium: axe-core (vendored in
tests/vendor/axe-core) finds no serious or critical violation before and after an answer; the
question box has a name; an empty submit says so; the focus comes back to the box after an
answer. The LLM is `SlowLlm` (a real HTTP server answering at once): what is tested is the
page, not the model; the index, retrieval and the answer check are the real ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server_fixtures import SlowLlm, ask_and_wait, ingested_store, open_chat, ready_server
from ui.chat import EMPTY_QUESTION, VIEWER_EMPTY

pytest_plugins = ["tests.browser_fixtures"]
pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
SEVERE = ("serious", "critical")
SCAN = """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
  .map(v => ({id: v.id, impact: v.impact,
              nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ': ' + n.failureSummary)}))"""


@pytest.fixture(scope="module")
def server():
    stub = SlowLlm(0.2)
    try:
        with ready_server(store_dir=str(ingested_store()), **stub.settings()) as srv:
            yield srv
    finally:
        stub.close()


def _severe(page) -> list[dict]:
    page.wait_for_timeout(1000)  # Gradio's buttons fade in after being re-enabled
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    return [v for v in page.evaluate(SCAN) if v["impact"] in SEVERE]


@pytest.mark.parametrize("path", ["/", "/widget"])
def test_no_serious_accessibility_violations_and_the_small_things(server, page, path, tmp_path):
    open_chat(page, server.url + path)
    assert _severe(page) == []
    box = page.get_by_role("textbox", name="Your question about the articles")
    assert box.count() == 1
    page.click("#rag-question textarea")
    page.keyboard.press("Enter")  # nothing typed: the page says what to do
    page.wait_for_function(
        "(text) => document.querySelector('#rag-notice')?.innerText.includes(text)",
        arg=EMPTY_QUESTION,
        timeout=30_000,
    )
    answer = ask_and_wait(page, "How many Indian soldiers were killed in the suicide bombing?")
    assert "] ." not in answer, answer
    page.wait_for_function(
        "() => document.activeElement === document.querySelector('#rag-question textarea')",
        timeout=30_000,
    )
    assert _severe(page) == []  # with an answer, its sources and the notice shown
    page.screenshot(path=str(tmp_path / "answered.png"))
    assert "Error" not in page.locator("#rag-chatbot").inner_text()
    quotes = page.locator("#rag-sources .rag-quote")  # each source with its passage
    assert quotes.count() >= 1 and quotes.first.inner_text().strip()
    page.locator("#rag-sources a.rag-source").first.click()
    page.locator("#rag-viewer mark#rag-passage").wait_for(timeout=30_000)
    ask_and_wait(page, "Who announced the release of the captured pilot?")
    # The article of the previous answer does not stay: the viewer waits for a new click.
    assert page.locator("#rag-viewer mark#rag-passage").count() == 0
    assert VIEWER_EMPTY in page.locator("#rag-viewer").inner_text()
