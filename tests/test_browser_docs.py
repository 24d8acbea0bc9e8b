"""The API docs in a real Chromium, offline: /docs (Swagger UI) and /redoc (ReDoc) render from
the server's own files with every non-local request blocked."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from tests.server_fixtures import Server

pytest_plugins = ["tests.browser_fixtures"]
pytestmark = pytest.mark.browser

SHOTS = "docs-shots"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(store_dir=str(tmp_path_factory.mktemp("empty-store")))
    try:
        srv.wait_up()
        yield srv
    finally:
        srv.stop()


def _offline(page) -> list[str]:
    """Block every request that does not go to 127.0.0.1; return the list of blocked URLs."""
    blocked: list[str] = []

    def route(r) -> None:
        if urlparse(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.context.route("**/*", route)
    return blocked


@pytest.mark.parametrize(
    "path, ready",
    [
        ("/docs", "#operations-api-ask_api_ask_post"),
        ("/redoc", "[data-section-id='tag/api/operation/ask_api_ask_post']"),
    ],
)
def test_the_api_docs_render_with_no_network(server, page, path, ready, tmp_path_factory):
    blocked = _offline(page)
    page.goto(server.url + path)
    page.wait_for_selector(ready, timeout=60_000)
    text = page.locator("body").inner_text()
    assert "/api/ask/stream" in text and "/v1/chat/completions" in text
    if path == "/docs":  # open /api/ask: the example answer and our error shape are shown
        page.click("#operations-api-ask_api_ask_post .opblock-summary")
        page.wait_for_selector("#operations-api-ask_api_ask_post .responses-table")
        shown = page.locator("#operations-api-ask_api_ask_post").inner_text()
        assert "40 Indian soldiers" in shown and "RAG_MAX_BODY_KB" in shown
        for status in ("401", "403", "413", "422", "429", "503"):
            assert status in shown, status
    else:
        assert "event: sentence" in text or "sentence" in text
    out = tmp_path_factory.getbasetemp() / SHOTS
    out.mkdir(exist_ok=True)
    page.screenshot(path=str(out / f"{path.strip('/')}.png"), full_page=False)
    assert blocked == [], blocked
