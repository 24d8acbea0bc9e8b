"""The API docs (ui.apidocs), in-process with a stand-in QA (plumbing): the spec has an
example of every request and response, and each documented error is the one the server sends.
The pages themselves, offline in a real Chromium: test_browser_docs.py."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from rag.schema import Answer
from rag.settings import Settings
from ui.loader import Loader
from ui.server import create_app
from ui.service import ChatService

TOKEN = "docs-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}


class _QA:
    def stream(self, query):
        yield Answer(answer=f"done: {query.question}")


def _client(loading: bool = False, **settings) -> tuple[TestClient, ChatService]:
    s = Settings(api_token=TOKEN, **settings)
    loader = Loader(s, qa=None if loading else _QA())
    if loading:
        loader.start = lambda: None  # type: ignore[method-assign]  # stays "loading"
    service = ChatService(s, loader)
    return TestClient(create_app(s, service), base_url="http://127.0.0.1:7860"), service


@pytest.fixture(scope="module")
def spec():
    client, _ = _client()
    return client.get("/openapi.json").json()


def _shape(text: str) -> str:
    return re.sub(r"\d[\d,]*", "N", text)


def test_every_operation_has_examples_and_our_error_shape(spec):
    assert "HTTPValidationError" not in str(spec)
    ops = [(p, m, op) for p, ops in spec["paths"].items() for m, op in ops.items()]
    assert {p for p, _, _ in ops} >= {"/api/ask", "/api/ask/stream", "/v1/chat/completions"}
    for path, method, op in ops:
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            assert body.get("examples"), (path, method)
        ok = op["responses"]["200"]["content"]
        assert any("example" in media for media in ok.values()), (path, method)
        errors = {s for s in op["responses"] if s.startswith(("4", "5"))}
        assert {"400", "401", "429"} <= errors, (path, method)
        if method == "post":
            assert {"403", "413", "422", "503"} <= errors, (path, method)
        for status in errors:
            media = op["responses"][status]["content"]["application/json"]
            assert media["examples"], (path, status)
    stream = spec["paths"]["/api/ask/stream"]["post"]["responses"]["200"]
    assert set(stream["content"]) == {"text/event-stream"}
    for event in ("sentence", "token", "retry", "answer", "error"):
        assert f"`{event}`" in stream["description"]
    assert stream["content"]["text/event-stream"]["example"].startswith("event: sentence")
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def _documented(spec, path: str, status: int, name: str) -> str:
    media = spec["paths"][path]["post"]["responses"][str(status)]["content"]["application/json"]
    return media["examples"][name]["value"]["error"]


def test_each_documented_error_is_the_one_sent(spec):
    client, service = _client(rate_limit_per_minute=1, queue_limit=2)
    ask = "/api/ask"
    sent = {
        (400, "host"): client.post(
            ask, json={"question": "Who?"}, headers={"Host": "evil.example"}
        ),
        (400, "json"): client.post(ask, content=b"{bad", headers={**AUTH, **JSON}),
        (422, "shape"): client.post(ask, content=b"question=Who", headers=AUTH),
        (401, "token"): client.post(ask, json={"question": "Who?"}),
        (403, "origin"): client.post(
            ask, json={"question": "Who?"}, headers={**AUTH, "Origin": "https://evil.example"}
        ),
        (413, "body"): client.post(ask, content=b"x" * (1025 * 1024), headers=AUTH),
        (422, "empty"): client.post(ask, json={"question": "  "}, headers=AUTH),
        (422, "missing"): client.post(ask, json={"history": []}, headers=AUTH),
        (422, "history"): client.post(
            ask, json={"question": "Who?", "history": [[1]]}, headers=AUTH
        ),
    }
    held = [
        service.gate.admit(
            "api", client=f"c{i}", question="Hold?", authorization=AUTH["Authorization"]
        )
        for i in range(2)
    ]
    sent[503, "busy"] = client.post(ask, json={"question": "Who?"}, headers=AUTH)  # counted
    for admission in held:
        service.gate.release(admission)
    sent[429, "rate"] = client.post(ask, json={"question": "Who?"}, headers=AUTH)
    loading, _ = _client(loading=True)
    sent[503, "loading"] = loading.post(ask, json={"question": "Who?"}, headers=AUTH)
    for (status, name), response in sent.items():
        assert response.status_code == status, (name, response.text)
        documented = _documented(spec, ask, status, name)
        assert _shape(response.json()["error"]) == _shape(documented), (status, name)


def test_docs_and_redoc_use_only_local_assets():
    client, _ = _client()
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200 and "/docs-assets/" in page.text, path
        assert not re.search(r"""(src|href)=["']?https?://""", page.text), path
        assert client.head(path).status_code == 200, path
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        assert client.get(f"/docs-assets/{asset}").status_code == 200, asset
