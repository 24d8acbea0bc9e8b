"""The real server: `rag serve` child processes answering plain HTTP, SSE and gradio_client calls.

Two processes, started together: `server` (bearer token, extra allowed origins, the seed index)
and `bare` (no token, no index yet, a tiny rate limit).
"""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import httpx
import pytest

from rag.schema import Answer
from tests.conftest import OFF_RAMP, article_text
from tests.server_fixtures import Server, ingested_store

pytestmark = pytest.mark.models  # real `rag` processes, real models

TOKEN = "test-token-7f3a9c"
EXTRA_ORIGINS = ["https://intranet.example.com", "https://*.corp.example"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    store = ingested_store()
    empty = tmp_path_factory.mktemp("empty-store")
    main = Server(store_dir=str(store), api_token=TOKEN, allowed_origins=json.dumps(EXTRA_ORIGINS))
    bare = Server(store_dir=str(empty), rate_limit_per_minute="3")
    try:
        # While the model loads, the page and the API already answer, and say so.
        assert main.wait_up() == "loading", main.log()
        early = httpx.post(f"{main.url}/api/ask", json={"question": "Who?"}, headers=AUTH)
        main.wait_status("ready")
        bare.wait_status("error")
        yield {"main": main, "bare": bare, "early": early}
    finally:
        main.stop()
        bare.stop()


@pytest.fixture(scope="module")
def server(servers) -> Server:
    return servers["main"]


@pytest.fixture(scope="module")
def bare(servers) -> Server:
    return servers["bare"]


# ---- main server --------------------------------------------------------------------------


def test_api_says_model_loading_with_503_and_retry_after(servers):
    early = servers["early"]
    assert early.status_code == 503
    assert int(early.headers["retry-after"]) > 0
    assert "loading" in early.json()["error"]


def test_the_model_reads_the_fixed_prompt_once_loaded(server):
    server.wait_status("ready")
    deadline = time.monotonic() + 60
    while "Prompt cache warmed" not in server.log(10**7):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.5)


def test_docs_and_openapi(server):
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/api/ask", "/api/ask/stream", "/api/status"} <= set(spec["paths"])


def test_api_requires_the_bearer_token(server):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        r = httpx.post(f"{server.url}/api/ask", json={"question": "Who?"}, headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"] == "Bearer"
        assert "token" in r.json()["error"]
    r = httpx.get(f"{server.url}/api/status", headers=AUTH)
    assert r.status_code == 200 and r.json()["status"] == "ready"
    # The token guards only the API: the pages load without it and never contain it.
    for path in ("/", "/widget", "/config"):
        page = httpx.get(f"{server.url}{path}")
        assert page.status_code == 200, path
        assert TOKEN not in page.text
    assert TOKEN not in server.log(10**7)


def test_bad_requests_are_422_with_an_error_message(server):
    url = f"{server.url}/api/ask"
    r = httpx.post(url, json={"question": "   "}, headers=AUTH)
    assert r.status_code == 422 and "empty" in r.json()["error"]
    r = httpx.post(url, json={"question": "Who?", "history": [["only one"]]}, headers=AUTH)
    assert r.status_code == 422 and "history" in r.json()["error"]
    r = httpx.post(url, json={"history": []}, headers=AUTH)
    assert r.status_code == 422 and "question" in r.json()["error"]


def test_csp_frame_ancestors_on_pages(server):
    local = "http://127.0.0.1:* https://127.0.0.1:* http://localhost:* https://localhost:*"
    expected = f"frame-ancestors 'self' {local} " + " ".join(EXTRA_ORIGINS)
    for path in ("/", "/widget", "/docs"):
        r = httpx.get(f"{server.url}{path}")
        assert r.headers["content-type"].startswith("text/html")
        policy = r.headers["content-security-policy"].split("; ")  # /docs: also its own
        assert expected in policy and len(r.headers.get_list("content-security-policy")) == 1, path


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:5173", True),
        ("http://127.0.0.1:9", True),
        ("https://intranet.example.com", True),
        ("https://wiki.corp.example", True),
        ("https://evil.example", False),
        ("http://127.0.0.2:8000", False),
        ("null", False),
    ],
)
def test_cors_for_the_api(server, origin, allowed):
    pre = httpx.options(
        f"{server.url}/api/ask",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    post = httpx.post(
        f"{server.url}/api/ask", json={"question": ""}, headers={**AUTH, "Origin": origin}
    )
    if allowed:
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == origin
        assert "authorization" in pre.headers["access-control-allow-headers"].lower()
        assert post.status_code == 422
        assert post.headers["access-control-allow-origin"] == origin
    else:
        assert "access-control-allow-origin" not in pre.headers
        assert post.status_code == 403 and "not allowed" in post.json()["error"]
        assert "access-control-allow-origin" not in post.headers


def test_the_indexed_articles_and_one_articles_text(server):
    listing = httpx.get(f"{server.url}/api/articles", headers=AUTH)
    assert listing.status_code == 200, listing.text
    by_id = {a["id"]: a for a in listing.json()}
    assert OFF_RAMP in by_id
    assert set(by_id[OFF_RAMP]) >= {"title", "date", "outlet", "url", "chars", "extractor"}
    one = httpx.get(f"{server.url}/api/articles/{quote(OFF_RAMP, safe='')}", headers=AUTH)
    assert one.status_code == 200 and one.json()["text"] == article_text(OFF_RAMP)
    assert one.json()["chars"] == len(article_text(OFF_RAMP))
    missing = httpx.get(f"{server.url}/api/articles/no%2Fsuch.html", headers=AUTH)
    assert missing.status_code == 404 and "GET /api/articles lists them" in missing.json()["error"]


def test_filters_reach_the_search_through_the_api_and_the_stream(server):
    # The seed articles lie at the corpus root and are undated: these filters admit none, so
    # the answer is a refusal (no LLM call) with no passage of them, not even among the closest.
    question = "How many Indian soldiers were killed in the suicide bombing?"
    for filters in ({"folder": "elsewhere"}, {"date_from": "2019-01-01"}):
        r = httpx.post(
            f"{server.url}/api/ask",
            json={"question": question, "filters": filters},
            headers=AUTH,
            timeout=60,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["refused"] and body["citations"] == [] and body["closest"] == [], body
    with httpx.stream(
        "POST",
        f"{server.url}/api/ask/stream",
        headers=AUTH,
        timeout=60,
        json={"question": question, "filters": {"outlet": "Nobody's Paper"}},
    ) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data:")]
    answer = json.loads(lines[-1].removeprefix("data:"))
    assert answer["refused"] and answer["closest"] == [], answer


@pytest.mark.e2e
def test_ask_returns_the_cli_json_with_exact_citations(server):
    r = httpx.post(
        f"{server.url}/api/ask",
        json={"question": "How many Indian soldiers were killed in the suicide bombing?"},
        headers=AUTH,
        timeout=300,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == set(Answer.model_fields)  # the `rag ask --json` contract
    answer = Answer.model_validate(body)
    assert not answer.refused and "40" in answer.answer
    assert answer.citations and "[1]" in answer.answer
    for c in answer.citations:
        assert c.source == OFF_RAMP
        assert article_text(c.source)[c.start : c.end] == c.quote


@pytest.mark.e2e
def test_stream_sends_tokens_then_the_answer(server):
    history = [
        {"role": "user", "content": "Who was captured by Pakistan?"},
        {"role": "assistant", "content": "An Indian pilot was captured by Pakistan [1]."},
    ]
    events = []
    with httpx.stream(
        "POST",
        f"{server.url}/api/ask/stream",
        headers=AUTH,
        timeout=300,
        json={"question": "Who announced that the pilot would be released?", "history": history},
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((event, json.loads(line.split(":", 1)[1])))
    kinds = [kind for kind, _ in events]
    assert kinds.count("answer") == 1 and kinds[-1] == "answer", kinds
    assert "token" not in kinds, "unchecked drafts are sent only on request"
    sentences = [data for kind, data in events if kind == "sentence"]
    answer = Answer.model_validate(events[-1][1])
    assert "Khan" in answer.answer and answer.citations
    assert " ".join(s["text"] for s in sentences) == answer.answer
    assert all(s["check"]["verdict"] == "supported" and s["citations"] for s in sentences)
    assert {c.n for c in answer.citations} == {c["n"] for s in sentences for c in s["citations"]}


@pytest.mark.e2e
def test_gradio_client_calls_the_running_server(server):
    from gradio_client import Client

    question = "What did India launch in response to the suicide bombing?"
    client = Client(server.url + "/", verbose=False, headers=AUTH)
    assert "/ask" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    answer = Answer.model_validate(client.predict(question, [], api_name="/ask"))
    assert "airstrike" in answer.answer.lower() and answer.citations
    # Like /api/*, the Gradio API endpoint needs the token when one is set: refused at the
    # door, before Gradio queues the call.
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        with pytest.raises(httpx.HTTPStatusError, match="401 Unauthorized"):
            Client(server.url + "/", verbose=False, headers=headers).predict(
                question, [], api_name="/ask"
            )


# ---- bare server: no token, no index, rate limit 3/min ------------------------------------


def test_without_token_the_api_is_open_and_explains_the_missing_index(bare):
    status = httpx.get(f"{bare.url}/api/status")
    assert status.status_code == 200
    assert status.json()["status"] == "error" and "rag ingest" in status.json()["message"]
    assert httpx.get(f"{bare.url}/").status_code == 200  # the page still loads
    r = httpx.post(f"{bare.url}/api/ask", json={"question": "Who?"})
    assert r.status_code in (503, 429)  # 429 if the other test used up the rate limit first
    if r.status_code == 503:
        assert "rag ingest" in r.json()["error"] and int(r.headers["retry-after"]) > 0


def test_rate_limit_per_client(bare):
    codes = [httpx.post(f"{bare.url}/api/ask", json={"question": "Who?"}) for _ in range(4)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    assert all(r.status_code == 503 for r in codes[: codes.index(limited[0])])
    assert int(limited[0].headers["retry-after"]) > 0
    assert "3 per minute" in limited[0].json()["error"]
