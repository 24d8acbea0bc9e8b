"""Hostile and broken input against a real `rag serve`: every bad request gets a clear error
with the right status, and the server keeps answering.

Cases already covered in tests/test_server.py are not repeated: a missing or wrong bearer token
(test_api_requires_the_bearer_token), CORS and 403 for unlisted origins (test_cors_for_the_api),
and the per-minute rate limit (test_rate_limit_per_client).
"""

from __future__ import annotations

import json
import socket
import threading

import httpx
import pytest

from tests.conftest import OFF_RAMP
from tests.server_fixtures import Server, ingested_store, ready_server

pytestmark = pytest.mark.models  # real `rag` processes, real models

TOKEN = "hardening-token-51c0"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT_KB = 64
QUESTION = "How many Indian soldiers were killed in the suicide bombing?"
OFF_TOPIC = "Who won the 2022 FIFA World Cup?"  # no evidence: refused without the LLM


@pytest.fixture(scope="module")
def server():
    with ready_server(
        store_dir=str(ingested_store()),
        api_token=TOKEN,
        max_body_kb=str(LIMIT_KB),
        queue_limit="1",
        rate_limit_per_minute="3",
    ) as srv:
        yield srv


def _post(server: Server, content, path: str = "/api/ask", **headers: str) -> httpx.Response:
    """POST raw bytes (or a generator function of chunks: sent chunked) with the token."""
    headers = {**AUTH, "Content-Type": "application/json", **headers}
    body = content() if callable(content) else content
    return httpx.post(f"{server.url}{path}", content=body, headers=headers, timeout=120)


def _post_json(server: Server, obj: object, path: str = "/api/ask") -> httpx.Response:
    return _post(server, json.dumps(obj).encode(), path)


def _alive(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz", timeout=10).json()["status"] == "ready"
    assert server.proc.poll() is None, server.log()


# ---- malformed JSON and wrong types -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"question": "Who?"', "not valid JSON"),
        (b"{'question': 'Who?'}", "not valid JSON"),
        (b'{"question": "Who?",}', "not valid JSON"),
        (b'{"question": "\xff\xfe"}', "could not be read as JSON"),  # not UTF-8
        (b'{"question": "Who?", "history": ' + b"[" * 5000 + b"]" * 5000 + b"}", "JSON"),
    ],
    ids=["truncated", "single-quotes", "trailing-comma", "not-utf8", "nested-5000"],
)
def test_malformed_json_is_400_with_a_message(server, body, says):
    for path in ("/api/ask", "/api/ask/stream"):
        r = _post(server, body, path)
        assert r.status_code == 400, (path, r.text)
        error = r.json()["error"]
        assert says in error and '{"question": "..."' in error, error
    _alive(server)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"question": 5}, "question: Input should be a valid string"),
        ({"question": None}, "question: Input should be a valid string"),
        ({"question": ["Who?"]}, "question: Input should be a valid string"),
        ({"question": {"text": "Who?"}}, "question: Input should be a valid string"),
        ({"history": []}, "question: Field required"),
        ({"question": "Who?", "history": "Who was captured?"}, "history must be a list"),
        ({"question": "Who?", "history": {"q": "a"}}, "history must be a list"),
        ({"question": "Who?", "history": [[1, 2]]}, "history must be a list"),
        ({"question": "Who?", "history": [["only one"]]}, "history must be a list"),
        ({"question": "Who?", "history": [{"role": "root", "content": "x"}]}, "history must"),
        ({"question": "Who?", "history": [{"role": "user", "content": 7}]}, "history must"),
        ({"question": "Who?", "filters": "bbc"}, "filters must be an object"),
        ({"question": "Who?", "filters": {"date_from": "March"}}, "date_from must be a day"),
        ({"question": "Who?", "filters": {"when": "today"}}, "Unknown filter when"),
        ({"question": "Who?", "filters": {"outlet": {"a": 1}}}, "outlet must be a name"),
        (["Who?"], "the body must be a JSON object"),
        ("Who?", "the body must be a JSON object"),
        (7, "the body must be a JSON object"),
        (None, "the body must be a JSON object"),
    ],
)
def test_wrong_types_are_422_with_a_message(server, body, says):
    for path in ("/api/ask", "/api/ask/stream"):
        r = _post_json(server, body, path)
        assert r.status_code == 422, (path, r.text)
        assert says in r.json()["error"], r.json()


def test_json_sent_as_text_or_form_is_422(server):
    body = json.dumps({"question": "Who?"}).encode()
    r = _post(server, body, **{"Content-Type": "text/plain"})
    assert r.status_code == 422 and "Content-Type: application/json" in r.json()["error"]
    r = httpx.post(f"{server.url}/api/ask", data={"question": "Who?"}, headers=AUTH)
    assert r.status_code == 422 and "JSON object" in r.json()["error"]


def test_empty_and_overlong_questions_are_422(server):
    r = _post_json(server, {"question": " \u200b\t\n "})
    assert r.status_code == 422 and "empty" in r.json()["error"]
    r = _post_json(server, {"question": "Who? " * 1000})
    assert r.status_code == 422 and "the limit is 2,000" in r.json()["error"]


# ---- body size ----------------------------------------------------------------------------


def _big_question(n_bytes: int) -> bytes:
    return json.dumps({"question": "x" * n_bytes}).encode()


def _chunks(body: bytes, size: int = 8192):
    def gen():
        for i in range(0, len(body), size):
            yield body[i : i + size]

    return gen


@pytest.mark.parametrize("path", ["/api/ask", "/api/ask/stream", "/gradio_api/queue/join"])
def test_oversized_body_is_413_with_or_without_content_length(server, path):
    over = _big_question(LIMIT_KB * 1024 + 10)
    way_over = _big_question(3 * 2**20)
    for label, body in (
        ("content-length", over),
        ("content-length, 3 MiB", way_over),
        ("chunked", _chunks(over)),
        ("chunked, 3 MiB", _chunks(way_over)),
    ):
        r = _post(server, body, path)
        if "chunked" in label:
            assert r.request.headers.get("transfer-encoding") == "chunked"
            assert "content-length" not in r.request.headers
        assert r.status_code == 413, (label, r.status_code, r.text[:200])
        error = r.json()["error"]
        assert f"limit of {LIMIT_KB} KiB" in error and "RAG_MAX_BODY_KB" in error, error
    _alive(server)


def test_body_just_under_the_limit_is_read_whole_even_chunked(server):
    # The question is too long for the app (422), which proves the whole body got through.
    body = _big_question(LIMIT_KB * 1024 - 100)
    for content in (body, _chunks(body, 1000)):
        r = _post(server, content)
        assert r.status_code == 422 and "the limit is 2,000" in r.json()["error"], r.text
    r = _post(server, _chunks(json.dumps({"question": " "}).encode(), 3))
    assert r.status_code == 422 and "empty" in r.json()["error"]


def test_a_huge_declared_length_is_refused_before_the_body_is_sent(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
            b"Content-Length: 107374182400\r\n\r\n" + b'{"question": "'
        )
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), reply[:300]
    assert b"connection: close" in head.lower()
    assert b"RAG_MAX_BODY_KB" in body
    _alive(server)


# ---- token on every API route -------------------------------------------------------------


def test_every_api_route_needs_the_token(server):
    calls = [
        ("GET", "/api/status", None),
        ("GET", "/api/articles", None),
        ("GET", f"/api/articles/{OFF_RAMP}", None),
        ("POST", "/api/ask", {"question": QUESTION}),
        ("POST", "/api/ask/stream", {"question": QUESTION}),
    ]
    for method, path, body in calls:
        for headers in (
            {},
            {"Authorization": "Bearer"},
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"bearer {TOKEN.upper()}"},
        ):
            r = httpx.request(method, f"{server.url}{path}", json=body, headers=headers)
            assert r.status_code == 401, (path, headers, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer <token>" in r.json()["error"]
            assert TOKEN not in r.text
        r = httpx.request(method, f"{server.url}{path}?token={TOKEN}", json=body)
        assert r.status_code == 401  # never in a URL


# ---- rate limit: per client, and not to be dodged -----------------------------------------


def test_forwarded_headers_do_not_dodge_the_rate_limit(server):
    """The client is the TCP peer: X-Forwarded-For / Forwarded from a client are not trusted
    (RAG_TRUSTED_PROXIES is not set), so new fake addresses do not reset its count."""
    codes = []
    for i in range(4):
        fake = f"203.0.113.{i}"
        headers = {**AUTH, "X-Forwarded-For": fake, "X-Real-IP": fake, "Forwarded": f"for={fake}"}
        r = httpx.post(  # the first question may wait for the prompt warm-up
            f"{server.url}/api/ask", json={"question": OFF_TOPIC}, headers=headers, timeout=300
        )
        codes.append(r.status_code)
    assert codes == [200, 200, 200, 429], codes


def test_behind_a_trusted_proxy_the_forwarded_client_counts(tmp_path):
    """With RAG_TRUSTED_PROXIES, X-Forwarded-For from that proxy names the client. (No index:
    every allowed question is a quick 503, a refused one 429.)"""
    proxied = Server(
        store_dir=str(tmp_path / "none"), rate_limit_per_minute="2", trusted_proxies='["127.0.0.1"]'
    )
    try:
        proxied.wait_status("error")
        url = f"{proxied.url}/api/ask"

        def ask(client: str) -> int:
            headers = {"X-Forwarded-For": client}
            return httpx.post(url, json={"question": OFF_TOPIC}, headers=headers).status_code

        assert [ask("198.51.100.7") for _ in range(3)] == [503, 503, 429]
        assert ask("198.51.100.8") == 503  # another client behind the proxy
    finally:
        proxied.stop()


# ---- queue full and rate limit while the model is busy -------------------------------------


def _from(ip: str) -> httpx.Client:
    """A client whose requests come from this loopback address (its own rate-limit count)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=ip), timeout=300)


@pytest.mark.e2e
def test_queue_full_is_503_with_retry_after_and_rate_limit_is_per_client(server):
    """queue_limit=1: while one answer streams, other questions get 503 at once."""
    first_token = threading.Event()
    events: list[str] = []
    url = f"{server.url}/api/ask"
    off_topic = {"question": OFF_TOPIC}

    def stream() -> None:
        with (
            _from("127.0.0.5") as c,
            c.stream(
                "POST", url + "/stream", json={"question": QUESTION, "drafts": True}, headers=AUTH
            ) as r,
        ):
            for line in r.iter_lines():
                if line.startswith("event:"):
                    events.append(line.split(":", 1)[1].strip())
                    first_token.set()

    worker = threading.Thread(target=stream)
    worker.start()
    try:
        assert first_token.wait(240), server.log()
        with _from("127.0.0.6") as c:
            for path in ("", "/stream"):
                r = c.post(url + path, json=off_topic, headers=AUTH)
                assert r.status_code == 503, r.text
                assert int(r.headers["retry-after"]) > 0
                assert "waiting for the model" in r.json()["error"]

        # Rate limit 3/min per client: a client on 127.0.0.2 uses up its 3 (503 while busy),
        # the 4th is 429; a client on 127.0.0.3 is not affected.
        with _from("127.0.0.2") as c:
            codes = [c.post(url, json=off_topic, headers=AUTH) for _ in range(4)]
        assert [r.status_code for r in codes] == [503, 503, 503, 429], codes
        assert int(codes[-1].headers["retry-after"]) > 0
        assert "3 per minute" in codes[-1].json()["error"]
        with _from("127.0.0.3") as c:
            assert c.post(url, json=off_topic, headers=AUTH).status_code == 503
    finally:
        worker.join(300)
    assert events[-1] == "answer", events

    # The slot is free again: the next question is answered.
    with _from("127.0.0.3") as c:
        r = c.post(url, json=off_topic, headers=AUTH)
    assert r.status_code == 200 and r.json()["refused"], r.text
