"""A fetched news page in a real Chromium against a real `rag serve` with the real LLM: the
citation shows the page's outlet and date and an "original" link, and the viewer shows the
extracted article without the site's menus, cookie banner, related links or footer.
One page load, one question."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.server_fixtures import CORPUS, ingested_store, open_chat, ready_server, wait_answered

pytest_plugins = ["tests.browser_fixtures"]
pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.models]

URL = "https://harbour-post.example/news/story-1.html"
SOURCE = "web/harbour-post.example/news/story-1.html"
QUESTION = "What did engineers replace on the Harbour Street bridge?"
CHROME = ("Horoscope", "Most Searched Products", "never share your email", "Accept all cookies")


@pytest.fixture(scope="module")
def server():
    from tests.web_site import news_page  # imported here: the module is also a pytest plugin

    corpus = Path(tempfile.mkdtemp(prefix="rag-test-web-corpus-"))
    try:
        shutil.copytree(CORPUS, corpus, dirs_exist_ok=True)
        page = corpus / SOURCE
        page.parent.mkdir(parents=True)
        page.write_text(news_page("story-1"), encoding="utf-8")
        sidecar = {"url": URL, "fetched": "2025-03-14T12:00:00+00:00", "etag": '"abc"'}
        page.with_name(page.name + ".json").write_text(json.dumps(sidecar))
        with ready_server(store_dir=str(ingested_store(corpus))) as srv:
            yield srv
    finally:
        shutil.rmtree(corpus, ignore_errors=True)


def test_a_citation_shows_date_outlet_and_the_original_and_the_viewer_the_article(server, page):
    open_chat(page, server.url + "/")
    page.fill("#rag-question textarea", QUESTION)
    page.keyboard.press("Enter")
    answer = wait_answered(page, 0)
    assert "steel deck" in answer, answer

    source = page.locator("#rag-sources li", has_text="Harbour bridge reopens").first
    assert "Harbour Post" in source.inner_text() and "2025-03-14" in source.inner_text()
    original = source.locator("a.rag-original")
    assert original.get_attribute("href") == URL
    assert original.get_attribute("target") == "_blank"
    assert "noopener" in (original.get_attribute("rel") or "")

    source.locator("a.rag-source").click()
    mark = page.locator("#rag-viewer mark#rag-passage")
    mark.wait_for(timeout=30_000)
    assert "corroded steel deck" in mark.inner_text()
    viewer = page.locator("#rag-viewer .rag-article")
    assert viewer.get_attribute("data-source") == SOURCE
    assert page.locator("#rag-viewer a.rag-original").get_attribute("href") == URL
    text = page.locator("#rag-viewer .rag-article-text").inner_text()
    assert "repairs costing 4.2 million pounds" in text
    for chrome in CHROME:
        assert chrome not in text, chrome
