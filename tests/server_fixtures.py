"""Helpers for tests that run a real `rag serve` process on a free localhost port."""

from __future__ import annotations

import atexit
import functools
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import child_env

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
READY_TIMEOUT = 300.0  # a loaded CI box may need minutes to load the models

_stores: dict[Path, Path] = {}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def server_env(**settings: str) -> dict[str, str]:
    """The environment for a child process: no inherited RAG_* settings, offline, plus these."""
    return child_env(**{f"RAG_{k.upper()}": v for k, v in settings.items()})


def ingested_store(corpus: Path = CORPUS) -> Path:
    """A temp index of `corpus` (default: the seed corpus) built by a real `rag ingest`;
    built once per corpus and session."""
    if corpus not in _stores:
        tmp = Path(tempfile.mkdtemp(prefix="rag-test-store-"))
        atexit.register(shutil.rmtree, tmp, True)
        store = tmp / "chroma"
        env = server_env(corpus_dir=str(corpus), store_dir=str(store))
        done = subprocess.run(
            [sys.executable, "-m", "rag.cli", "ingest", "--quiet"],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"rag ingest failed:\n{done.stdout}\n{done.stderr}"
        _stores[corpus] = store
    return _stores[corpus]


def planted_corpus(files: dict[str, str]) -> Path:
    """A temp corpus: the seed articles plus these {file name: text} ones (deleted at exit)."""
    corpus = Path(tempfile.mkdtemp(prefix="rag-test-corpus-"))
    atexit.register(shutil.rmtree, corpus, True)
    shutil.copytree(CORPUS, corpus, dirs_exist_ok=True)
    for name, text in files.items():
        (corpus / name).write_text(text, encoding="utf-8")
    return corpus


def proc_rss_mb(pid: int) -> float:
    """Resident memory (VmRSS) of process `pid` in MiB; NaN once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class Server:
    """A `rag serve` child process with its own settings (RAG_* variables) and log file."""

    def __init__(self, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = Path(tempfile.mkdtemp(prefix="rag-test-server-"))
        self.log_path = self.workdir / "server.log"
        self.env = server_env(**settings)
        self.start()

    def start(self) -> None:
        """Start `rag serve` on this server's port (again, after `kill`); output goes to the log."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rag.cli",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL the process, as a crash or a power cut would end it; the port is then free."""
        self.proc.kill()
        self.proc.wait(timeout=30)

    def rss_mb(self) -> float:
        """The server process's resident memory now, in MiB (from /proc/<pid>/status)."""
        return proc_rss_mb(self.proc.pid)

    def log(self, tail: int = 4000) -> str:
        """The end of the server's output, for failure messages."""
        return self.log_path.read_text(errors="replace")[-tail:]

    def wait_up(self, timeout: float = 120.0) -> str:
        """Wait until the server answers /healthz; return its status (loading, ready, error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"rag serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).json()["status"]
            except (httpx.HTTPError, ValueError):
                time.sleep(0.2)
        raise AssertionError(f"rag serve did not come up in {timeout:.0f} s:\n{self.log()}")

    def wait_status(self, *wanted: str, timeout: float = READY_TIMEOUT) -> str:
        """Wait until /healthz reports one of `wanted`."""
        deadline = time.monotonic() + timeout
        status = self.wait_up()
        while status not in wanted:
            if time.monotonic() > deadline:
                raise AssertionError(f"status stayed {status!r}, wanted {wanted}:\n{self.log()}")
            time.sleep(0.5)
            status = self.wait_up()
        return status

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and remove its work folder."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def ready_server(**settings: str) -> Iterator[Server]:
    """A `rag serve` with these settings, ready for questions; stopped on exit."""
    srv = Server(**settings)
    try:
        srv.wait_status("ready")
        yield srv
    finally:
        srv.stop()


# ---- a real browser: helpers for pages (the fixtures are in tests/browser_fixtures.py) ---


def open_chat(page, url: str, ready: bool = True) -> None:
    """Open the chat page (or widget) at `url` and wait for the input (and "Ready")."""
    page.goto(url)
    page.wait_for_selector("#rag-question textarea", timeout=60_000)
    if ready:
        page.wait_for_function(
            "() => document.querySelector('.rag-status').innerText.includes('Ready')",
            timeout=60_000,
        )


def ask_in_page(page, question: str) -> None:
    """Type a question into the chat and send it."""
    page.fill("#rag-question textarea", question)
    page.keyboard.press("Enter")


def bot_count(page) -> int:
    """How many assistant messages the chat shows."""
    return page.locator("#rag-chatbot [data-testid='bot']").count()


def wait_answered(page, answers_before: int, timeout_ms: int = 240_000) -> str:
    """Wait until the chat holds a finished answer beyond `answers_before` (no cursor, input
    enabled again); return the text of the last one."""
    page.wait_for_function(
        """(before) => {
          const bots = document.querySelectorAll('#rag-chatbot [data-testid="bot"]');
          const box = document.querySelector('#rag-question textarea');
          const last = bots.length ? bots[bots.length - 1].innerText : '';
          return bots.length > before
            && !/▌|Reading the articles|checking the next sentence|Waiting for the model/.test(last)
            && box && !box.disabled;
        }""",
        arg=answers_before,
        timeout=timeout_ms,
    )
    return page.locator("#rag-chatbot [data-testid='bot']").last.inner_text()


def ask_and_wait(page, question: str, timeout_ms: int = 240_000) -> str:
    """Ask in the chat and return the finished answer's text."""
    before = bot_count(page)
    ask_in_page(page, question)
    return wait_answered(page, before, timeout_ms)


# ---- an OpenAI-compatible upstream that answers slowly, and the page's own protocol -------


class SlowLlm:
    """A stand-in OpenAI-compatible LLM server (a real HTTP server on 127.0.0.1) that answers
    every chat completion, streamed, after `delay` seconds, one at a time; a question holding
    "ECHO" fails with HTTP 500 and echoes the request's Authorization header, as a careless
    upstream might. For tests of admission and limits, where what matters is how long the
    model is busy, not what it says."""

    REPLY = "A suicide bombing killed 40 Indian soldiers [1]."

    def __init__(self, delay: float) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        lock, self.calls = threading.Lock(), 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if b"ECHO" in body:
                    given = self.headers.get("authorization", "")
                    self._send(500, json.dumps({"error": {"message": f"Failed for {given}"}}))
                    return
                with lock:  # one answer at a time, like a local model
                    outer.calls += 1
                    time.sleep(delay)
                chunk = {"id": "x", "object": "chat.completion.chunk", "model": "m",
                         "choices": [{"index": 0, "delta": {"content": outer.REPLY},
                                      "finish_reason": None}]}  # fmt: skip
                self._send(
                    200, f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n", "text/event-stream"
                )

            def _send(self, status: int, text: str, ctype: str = "application/json") -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def settings(self) -> dict[str, str]:
        """The RAG_* settings that send a server's LLM calls here."""
        return {"llm_backend": "openai", "openai_base_url": self.url}

    def close(self) -> None:
        """Stop the server."""
        self.httpd.shutdown()
        self.httpd.server_close()


def page_ticket_of(url: str) -> str:
    """The page's ticket, read from the page as any reader's browser gets it."""
    import re

    found = re.search(r'const ticket = "([0-9a-f]+)"', httpx.get(url + "/", timeout=30).text)
    assert found, "no ticket script in the page"
    return found.group(1)


@functools.lru_cache(maxsize=64)
def handler_index(url: str, api_name: str) -> int:
    """The index of one of the page's event handlers, from Gradio's /config."""
    deps = httpx.get(url + "/config", timeout=30).json()["dependencies"]
    return next(d["id"] for d in deps if d.get("api_name") == api_name)


def ask_like_the_page(
    url: str,
    question: str,
    headers: dict[str, str],
    session: str,
    timeout: float = 120,
    seen: list[str] | None = None,
) -> tuple[int, str]:
    """Ask as the chat page does, over Gradio's own protocol: `add_question` (direct), then
    `respond` (through the queue). Returns (HTTP status of the first refused step or 200,
    the last chat message or the refusal's error); `seen` collects the updates sent while the
    answer was coming."""
    import json

    steps = (
        ("run/predict", "add_question", [question, None]),
        ("queue/join", "respond", [None, None]),
    )
    for path, handler, data in steps:
        call = {"session_hash": session, "fn_index": handler_index(url, handler), "data": data}
        r = httpx.post(f"{url}/gradio_api/{path}", json=call, headers=headers, timeout=30)
        if r.status_code != 200:
            return r.status_code, r.json().get("error", "")
    params = {"session_hash": session}
    with httpx.stream("GET", f"{url}/gradio_api/queue/data", params=params, timeout=timeout) as s:
        for line in s.iter_lines():
            message = json.loads(line[5:]) if line.startswith("data:") else {}
            if seen is not None and message.get("msg") == "process_generating":
                seen.append(line)  # an update (Gradio sends diffs of the chat), as JSON text
            if message.get("msg") == "process_completed":
                return 200, _last_chat_text(message.get("output") or {})
    return 200, ""


def _last_chat_text(output: dict) -> str:
    """The text of the last chat message in an update of `respond`'s outputs."""
    chat = (output.get("data") or [None])[0]
    if isinstance(chat, list) and chat and isinstance(chat[-1], dict):
        content = chat[-1].get("content")
        if isinstance(content, list):
            return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
        return str(content)
    return str(output.get("error") or "")
