"""The holes of issue 16, each attacked again against one real `rag serve` on 127.0.0.1.

The server has a token, a queue limit of 4, a short request deadline (2 s), and a corpus made
by a real `rag ingest` holding symbolic links out of it and a UTF-8 article with one stray
byte. Its LLM is `SlowLlm`, a real HTTP server that answers after a fixed delay: the tests are
about who gets in and for how long, so the model only has to be busy for a known time.
"""

from __future__ import annotations

import contextlib
import json
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from rag.settings import Settings
from tests.server_fixtures import (
    CORPUS,
    SlowLlm,
    ask_like_the_page,
    handler_index,
    page_ticket_of,
    ready_server,
    server_env,
)

pytest_plugins = ["tests.browser_fixtures"]
pytestmark = pytest.mark.models  # real `rag` processes, the real embedding model

TOKEN = "attacks-token-9f8e7d6c5b4a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SHORT_KEY = "k3y-42"  # a secret shorter than 8 characters: masked all the same
LIMIT, DELAY, DEADLINE = 4, 2.5, 2.0
QUESTION = "How many Indian soldiers were killed in the suicide bombing?"
SECRET = "RAG_API_TOKEN=hunter2-outside-the-corpus"
STRAY = "Transfer fees\n\nThe club paid £15m for José Núñez, the “best” signing of the summer.\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The seed articles, a UTF-8 article with one cp1252 byte, and links out of the corpus."""
    root = tmp_path_factory.mktemp("attack-corpus")
    corpus, outside = root / "corpus", root / "outside"
    shutil.copytree(CORPUS, corpus)
    outside.mkdir()
    (outside / "secret.env").write_text(f"Settings\n\n{SECRET}\n")
    (corpus / "secret.txt").symlink_to("../outside/secret.env")
    (corpus / "passwd.txt").symlink_to("/etc/passwd")
    (corpus / "elsewhere").symlink_to(outside, target_is_directory=True)
    raw = STRAY.encode().replace(b"the \xe2\x80\x9c", b"the \x92\xe2\x80\x9c", 1)
    (corpus / "transfer.txt").write_bytes(raw)
    return corpus


@pytest.fixture(scope="module")
def ingested(corpus, tmp_path_factory):
    """(store folder, what `rag ingest` printed)."""
    store = tmp_path_factory.mktemp("attack-store") / "chroma"
    env = server_env(corpus_dir=str(corpus), store_dir=str(store))
    done = subprocess.run(
        [sys.executable, "-m", "rag.cli", "ingest"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return store, done.stdout + done.stderr


@pytest.fixture(scope="module")
def llm():
    stub = SlowLlm(DELAY)
    yield stub
    stub.close()


@pytest.fixture(scope="module")
def server(ingested, llm):
    settings = dict(
        store_dir=str(ingested[0]),
        api_token=TOKEN,
        openai_api_key=SHORT_KEY,
        queue_limit=str(LIMIT),
        rate_limit_per_minute="1000",
        request_timeout=str(DEADLINE),
    )
    with ready_server(**settings, **llm.settings()) as srv:
        yield srv


# ---- 1. the page's handlers are not an API ------------------------------------------------


def test_the_pages_handlers_answer_no_script_without_the_token(server):
    from gradio_client import Client

    client = Client(server.url + "/", verbose=False)
    api = client.view_api(print_info=False, return_format="dict")
    assert list(api["named_endpoints"]) == ["/ask"] and not api["unnamed_endpoints"]
    for name in ("/add_question", "/respond", "/open_citation"):
        with pytest.raises(ValueError, match="Cannot find a function"):
            client.predict(QUESTION, api_name=name)
    with pytest.raises(ValueError, match="Invalid function index"):
        client.predict(QUESTION, None, fn_index=handler_index(server.url, "respond"))
    with pytest.raises(httpx.HTTPStatusError, match="401"):  # the public /ask needs the token
        client.predict(QUESTION, [], api_name="/ask")
    client.close()

    # The same calls by hand, as the page makes them: refused without the page's ticket, and
    # a token is not a ticket. Gradio's name-based routes are gone.
    for headers in ({}, AUTH):
        status, error = ask_like_the_page(server.url, QUESTION, headers, "no-ticket")
        assert status == 403 and "not an API" in error
    respond = handler_index(server.url, "respond")
    for path in ("/gradio_api/run/respond", "/gradio_api/run/predict"):
        r = httpx.post(server.url + path, json={"data": [QUESTION, None], "fn_index": respond})
        assert r.status_code == 403, (path, r.text)
    for path in ("/gradio_api/call/respond", "/gradio_api/api/respond", "/gradio_api/call/ask"):
        assert httpx.post(server.url + path, json={"data": [QUESTION]}).status_code == 404


def test_a_script_that_loads_the_page_is_a_reader_with_a_readers_limits(server):
    """The page stays open: whoever loads it (a browser, or a script acting as one) gets the
    ticket and asks as a reader, through the same gate."""
    ticket = page_ticket_of(server.url)
    status, answer = ask_like_the_page(server.url, QUESTION, {"X-Rag-Page": ticket}, "reader")
    assert status == 200 and "40" in answer, answer
    # A queued handler cannot be called around the queue, even with the ticket.
    r = httpx.post(
        server.url + "/gradio_api/run/predict",
        json={"data": [None, None], "fn_index": handler_index(server.url, "respond")},
        headers={"X-Rag-Page": ticket},
    )
    assert r.status_code == 404 and "queue" in r.json()["error"]


# ---- 2. one queue, one limit ----------------------------------------------------------------


def test_a_flood_through_the_page_protocol_and_the_api_is_bounded(server, llm):
    """50 readers' questions at once over the page's own protocol, and 5 API requests, with a
    queue limit of 4: at most 4 wait for the model, the rest are refused at once."""
    ticket = {"X-Rag-Page": page_ticket_of(server.url)}
    calls_before = llm.calls

    def page(i: int) -> tuple[str, int, str, float, list[str]]:
        seen: list[str] = []
        start = time.monotonic()
        status, text = ask_like_the_page(server.url, QUESTION, ticket, f"flood-{i}", seen=seen)
        return "page", status, text, time.monotonic() - start, seen

    def api(i: int) -> tuple[str, int, str, float, list[str]]:
        start = time.monotonic()
        r = httpx.post(
            f"{server.url}/api/ask", json={"question": QUESTION}, headers=AUTH, timeout=300
        )
        text = r.json().get("answer") or r.json().get("error", "")
        return "api", r.status_code, text, time.monotonic() - start, []

    start = time.monotonic()
    with ThreadPoolExecutor(55) as pool:
        futures = [pool.submit(page, i) for i in range(50)] + [
            pool.submit(api, i) for i in range(5)
        ]
        results = [f.result(timeout=300) for f in futures]
    total = time.monotonic() - start
    answered = [r for r in results if r[1] == 200 and "40" in r[2]]
    rejected = [r for r in results if r[1] == 503 or "already waiting" in r[2]]
    assert len(answered) + len(rejected) == 55, [
        r[:3] for r in results if r not in answered + rejected
    ]
    burst = max(r[3] for r in rejected)  # every refusal came back within this
    print(
        f"flood: {len(answered)} answered, {len(rejected)} rejected "
        f"({sum(r[0] == 'page' for r in rejected)} of 50 page questions in the chat, "
        f"{sum(r[0] == 'api' for r in rejected)} of 5 API requests with 503); every refusal "
        f"within {burst:.2f} s; all done in {total:.1f} s; the model was called "
        f"{llm.calls - calls_before} times"
    )
    # While the refusals came back, the model could finish at most burst / DELAY questions,
    # each making room for one more: no more were admitted than that.
    assert len(answered) <= LIMIT + int(burst / DELAY) + 1, (len(answered), burst)
    assert len(answered) >= 1 and llm.calls - calls_before == len(answered)
    assert total < len(answered) * DELAY + 60
    # A reader who waited saw their place in the queue.
    waited = [r for r in answered if any("ahead of yours" in line for line in r[4])]
    assert waited, [r[4][:3] for r in answered]


# ---- 3. DNS rebinding ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/api/ask", "/gradio_api/queue/join", "/healthz"])
def test_a_rebinding_page_is_refused_by_its_host(server, path):
    port = server.port
    forged = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}", **AUTH}
    method = "GET" if path in ("/", "/healthz") else "POST"
    r = httpx.request(method, server.url + path, json={"question": QUESTION}, headers=forged)
    assert r.status_code == 400 and "RAG_ALLOWED_HOSTS" in r.json()["error"], r.text
    # The origin guard compares with the allowed hosts, never with the request's own Host.
    own = {"Host": f"localhost:{port}", "Origin": f"http://evil.example:{port}", **AUTH}
    if method == "POST":
        r = httpx.post(server.url + path, json={"question": QUESTION}, headers=own)
        assert r.status_code == 403, r.text
    assert httpx.get(server.url + "/healthz", headers={"Host": f"localhost:{port}"}).is_success
    assert "Refused a request for Host 'evil.example:" in server.log(10**7)


# ---- 4. links out of the corpus, 7. a stray byte --------------------------------------------


def test_links_out_of_the_corpus_are_skipped_and_never_served(server, ingested, embeddings):
    from rag.pipeline import open_index_for

    _, output = ingested
    assert "secret.txt: is a link to ../outside/secret.env, outside the corpus folder" in output
    assert "passwd.txt: is a link to /etc/passwd, outside the corpus folder" in output
    assert "elsewhere: is a link to the folder" in output
    index = open_index_for(Settings(store_dir=ingested[0]), embeddings)
    assert set(index.article_states()) == {p.name for p in CORPUS.iterdir()} | {"transfer.txt"}
    r = httpx.post(
        f"{server.url}/api/ask",
        json={"question": "What is the RAG_API_TOKEN setting? What is root's shell?"},
        headers=AUTH,
        timeout=120,
    )
    assert r.status_code == 200 and "hunter2" not in r.text and "root:x" not in r.text


def test_one_stray_byte_no_longer_garbles_the_article(server, ingested):
    _, output = ingested
    assert "transfer.txt: 1 invalid UTF-8 byte sequence replaced by \ufffd" in output
    r = httpx.post(
        f"{server.url}/api/ask",
        json={"question": "How much did the club pay for José Núñez?"},
        headers=AUTH,
        timeout=120,
    )
    passages = [c["quote"] for c in r.json()["citations"] + r.json()["closest"]]
    assert any("£15m for José Núñez" in q for q in passages), r.text
    assert "Â£" not in r.text and "JosÃ©" not in r.text


# ---- 5. uploads ----------------------------------------------------------------------------


def test_there_is_no_upload_route(server):
    start = time.monotonic()
    files = {"files": ("a.txt", b"x" * 900_000, "text/plain")}
    codes = [
        httpx.post(f"{server.url}/gradio_api/upload", files=files).status_code for _ in range(20)
    ]
    assert codes == [404] * 20, codes
    assert time.monotonic() - start < 30
    for path in (
        "/gradio_api/file=/etc/passwd",
        "/file=/etc/passwd",
        "/gradio_api/upload_progress",
    ):
        assert httpx.get(server.url + path).status_code == 404, path


# ---- 6. slow clients -----------------------------------------------------------------------


def _slow_connection(port: int, source: str, body: bool) -> socket.socket:
    """A connection that sends its request's headers (or, with `body`, its body) a byte at a
    time."""
    sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
    if body:
        head = (
            f"POST /api/ask HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"
        )
    else:
        head = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    sock.sendall(head.encode())
    sock.setblocking(False)
    return sock


def _hold(socks: list[socket.socket], seconds: float) -> dict[socket.socket, tuple[float, bytes]]:
    """Trickle a byte into each connection every 0.5 s until the server closes it; when each
    was closed (seconds from now) and what the server sent."""
    start, closed, got = time.monotonic(), {}, {s: b"" for s in socks}
    last_sent = 0.0
    while len(closed) < len(socks) and time.monotonic() - start < seconds:
        open_ = [s for s in socks if s not in closed]
        readable, _, _ = select.select(open_, [], [], 0.1)
        for s in readable:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            got[s] += data
            if not data:
                closed[s] = (time.monotonic() - start, got[s])
        if time.monotonic() - last_sent > 0.5:
            last_sent = time.monotonic()
            for s in open_:
                with contextlib.suppress(OSError):
                    s.send(b"x")
    return closed


def test_slow_clients_are_closed_in_time_and_bounded_per_address(server):
    """300 slow connections from 6 addresses (50 each, half slow headers, half a slow body),
    and 10 more from one of them: the 10 are closed at once, the 300 when the request deadline
    passes; meanwhile another client is answered."""
    sources = [f"127.0.0.{11 + i}" for i in range(6)]
    socks = [
        _slow_connection(server.port, src, body=n % 2 == 1) for src in sources for n in range(50)
    ]
    extra = [_slow_connection(server.port, sources[0], body=False) for _ in range(10)]
    answered: list[float] = []

    def meanwhile() -> None:
        time.sleep(0.5)
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as c:
            start = time.monotonic()
            assert c.get(server.url + "/healthz", timeout=10).status_code == 200
            answered.append(time.monotonic() - start)

    other = threading.Thread(target=meanwhile)
    other.start()
    closed = _hold(socks + extra, seconds=DEADLINE + 15)
    other.join(15)
    for s in socks + extra:
        s.close()
    assert all(s in closed for s in extra) and all(closed[s][0] < 1.0 for s in extra)
    assert all(closed[s][1].startswith(b"HTTP/1.1 429") for s in extra)
    assert all(s in closed for s in socks), f"{len(socks) - len(closed)} never closed"
    times = sorted(closed[s][0] for s in socks)
    print(
        f"slow clients: 10 over the per-address cap closed within "
        f"{max(closed[s][0] for s in extra):.2f} s; 300 closed after {times[0]:.2f}–"
        f"{times[-1]:.2f} s (deadline {DEADLINE} s); another client answered in "
        f"{answered[0]:.2f} s meanwhile"
    )
    assert times[0] > DEADLINE - 0.5 and times[-1] < DEADLINE + 3
    assert all(closed[s][1].startswith(b"HTTP/1.1 408") for s in socks)
    assert answered and answered[0] < 2.0


# ---- minor: errors, short secrets, framing ---------------------------------------------------


def test_bad_input_to_a_page_handler_gets_no_python_error_text(server):
    ticket = {"X-Rag-Page": page_ticket_of(server.url)}
    cite = handler_index(server.url, "open_citation")
    for body in (
        {"data": [None], "fn_index": cite, "event_data": ["not", "a", "dict"]},
        {"data": [None], "fn_index": cite, "event_data": {"ref": {"x": 1}}},
        {"data": [], "fn_index": cite},
        {"data": "x", "fn_index": cite},
        {"data": [None, None, None, None], "fn_index": cite, "session_hash": "s"},
    ):
        r = httpx.post(f"{server.url}/gradio_api/run/predict", json=body, headers=ticket)
        text = r.text
        for leak in ("Traceback", "Error:", "KeyError", "TypeError", "AttributeError", "index"):
            assert leak not in text, (body, text)
        assert "x-request-id" in r.headers


def test_a_short_secret_is_masked_in_errors_and_the_log(server):
    r = httpx.post(
        f"{server.url}/api/ask",
        json={"question": "ECHO: how many soldiers were killed in the suicide bombing?"},
        headers=AUTH,
        timeout=120,
    )
    assert r.status_code == 503 and "LLM server" in r.json()["error"], r.text
    assert "***" in r.text and SHORT_KEY not in r.text
    assert SHORT_KEY not in server.log(10**8)


def test_pages_forbid_framing_also_for_old_browsers_and_the_api_says_to_escape(server):
    for path in ("/", "/widget"):
        r = httpx.get(server.url + path)
        assert r.headers["x-frame-options"] == "SAMEORIGIN"
        assert r.headers["content-security-policy"].startswith("frame-ancestors 'self'")
    description = httpx.get(server.url + "/openapi.json").json()["info"]["description"]
    assert "escape them" in description
    assert json.loads(httpx.get(server.url + "/healthz").text)["status"] == "ready"


# ---- the page's readers in the one queue ---------------------------------------------------


@pytest.mark.browser
def test_a_reader_sees_their_place_and_a_full_queue_in_the_chat(server, page):
    """Questions from the API hold the model: a reader's question shows its place while it
    waits, then its answer; when the queue is full, the chat says so and takes the next one."""
    from tests.server_fixtures import ask_and_wait, open_chat, wait_answered

    def api_questions(n: int) -> list[threading.Thread]:
        def one() -> None:
            httpx.post(
                f"{server.url}/api/ask", json={"question": QUESTION}, headers=AUTH, timeout=120
            )

        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        time.sleep(1.0)  # admitted
        return threads

    open_chat(page, server.url + "/")
    busy = api_questions(2)
    page.fill("#rag-question textarea", QUESTION)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('#rag-chatbot').innerText.includes('ahead of yours')",
        timeout=30_000,
    )
    assert "40" in wait_answered(page, 0, timeout_ms=60_000)
    for t in busy:
        t.join(60)

    busy = api_questions(LIMIT)
    before = page.locator("#rag-chatbot [data-testid='bot']").count()
    page.fill("#rag-question textarea", QUESTION)
    page.keyboard.press("Enter")
    assert "already waiting for the model" in wait_answered(page, before, timeout_ms=30_000)
    for t in busy:
        t.join(60)
    assert "40" in ask_and_wait(page, QUESTION, timeout_ms=60_000)  # the input is free again
