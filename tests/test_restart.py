"""The server is killed while the chat page streams an answer, then started again on the same
port: the page must come back by itself, say what happened, keep the conversation, mark the
interrupted answer as not answered, and answer a new question.

What Gradio 6 does on its own: a "Connection Lost" toast, a reconnection poll every 2 s, and a
page reload once the server answers. What we add (ui/page.py, ui/session.py): the conversation
saved in the tab's sessionStorage and restored on load, and the notice.
"""

from __future__ import annotations

import pytest

from tests.conftest import OFF_RAMP
from tests.server_fixtures import (
    ROOT,
    ask_and_wait,
    ask_in_page,
    bot_count,
    ingested_store,
    open_chat,
    ready_server,
    wait_answered,
)
from ui.session import NOT_ANSWERED

pytest_plugins = ["tests.browser_fixtures"]
pytestmark = [pytest.mark.browser, pytest.mark.e2e]

FIRST = "How many Indian soldiers were killed in the suicide bombing?"
INTERRUPTED = "What did India launch in response to the suicide bombing?"
AFTER = "Who announced the release of the captured pilot?"
NOTICE = "Connection to the server was lost; it is back — please ask again."
# An answer in progress: its notice shows until the checked sentences replace it.
STREAMING = (
    "() => /Reading the articles|checking the next sentence/"
    ".test(document.querySelector('#rag-chatbot').innerText)"
)
READY = "() => document.querySelector('.rag-status').innerText.includes('Ready')"
GRADIO_TOAST = "() => document.body.innerText.includes('Connection to the server was lost.')"


@pytest.fixture
def server():
    with ready_server(store_dir=str(ingested_store())) as srv:
        yield srv


@pytest.mark.parametrize("path", ["/", "/widget"], ids=["page", "widget"])
def test_page_recovers_when_the_server_restarts_mid_answer(server, page, path):
    open_chat(page, server.url + path)
    first = ask_and_wait(page, FIRST)
    assert "40" in first and "[1]" in first, first

    # Kill the server while the second answer streams.
    before = bot_count(page)
    ask_in_page(page, INTERRUPTED)
    page.wait_for_function(STREAMING, timeout=240_000)
    server.kill()
    page.wait_for_function(GRADIO_TOAST, timeout=30_000)  # Gradio's own "Connection Lost"

    # Same port again: Gradio reloads the page; the conversation and a notice come back.
    server.start()
    notice = page.locator("#rag-notice")
    notice.wait_for(state="visible", timeout=120_000)
    assert NOTICE in notice.inner_text()
    users = page.locator("#rag-chatbot [data-testid='user']").all_inner_texts()
    bots = page.locator("#rag-chatbot [data-testid='bot']").all_inner_texts()
    assert users == [FIRST, INTERRUPTED], users
    assert len(bots) == before + 1 == 2, bots
    assert "40" in bots[0] and "[1]" in bots[0]
    assert NOT_ANSWERED in bots[1] and "▌" not in bots[1]
    assert OFF_RAMP in page.locator("#rag-sources").inner_text()  # the last answer's sources
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    page.screenshot(path=str(ROOT / "test-artifacts" / f"restart-recovered{path.strip('/')}.png"))

    # Once the restarted server has loaded, the restored answer's citation opens its passage
    # (the server has the turns back).
    page.wait_for_function(READY, timeout=300_000)
    page.locator("#rag-chatbot a.rag-cite").first.click()
    mark = page.locator("#rag-viewer mark#rag-passage")
    mark.wait_for(timeout=30_000)
    assert "killed 40 Indian soldiers" in mark.inner_text()

    # A new question is answered (once the restarted server has loaded the model again).
    after = ask_and_wait(page, AFTER, timeout_ms=400_000)
    assert "Khan" in after and "[1]" in after, after
    assert not notice.is_visible()
    users = page.locator("#rag-chatbot [data-testid='user']").all_inner_texts()
    assert users == [FIRST, INTERRUPTED, AFTER], users

    # A plain reload keeps the conversation too, with no notice (nothing was interrupted).
    page.reload()
    wait_answered(page, 2)
    assert page.locator("#rag-chatbot [data-testid='user']").all_inner_texts() == users
    assert not page.locator("#rag-notice").is_visible()
