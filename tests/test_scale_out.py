"""Scale-out: the index on a Chroma server (`chroma run`) and the LLM on an OpenAI-compatible
server (`python -m llama_cpp.server`), each a real process on a free localhost port."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from rag.errors import IndexMismatchError, IndexMissingError, ModelError, SettingsError
from rag.settings import Settings
from tests.conftest import CORPUS, MEDIATION, OFF_RAMP
from tests.server_fixtures import free_port, server_env

pytestmark = pytest.mark.models  # real `rag` processes, real models

CHROMA = Path(sys.executable).parent / "chroma"
LLM_KEY = "sk-scale-out-test-key"  # what the LLM server expects; must never be printed
MODEL_ALIAS = "qwen2.5-coder-1.5b-instruct"
SOLDIERS = "How many Indian soldiers were killed in the suicide bombing in Kashmir?"
PILOT = "Who announced that the captured Indian pilot would be released?"


def start(args: list[str], log: Path, env: dict[str, str], ready_url: str, headers=None):
    """Start a server process and wait until `ready_url` answers 200; return the Popen."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
    deadline = time.monotonic() + 300  # loading a model on a busy 2-core box takes a while
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{args[0]} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(ready_url, headers=headers, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop(proc)
    raise AssertionError(f"{args[0]} did not come up:\n{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass
class Chroma:
    """A running `chroma run`."""

    host: str
    port: int

    def env(self, **settings: str) -> dict[str, str]:
        """The environment of a `rag` process that uses this server."""
        return server_env(chroma_host=self.host, chroma_port=str(self.port), **settings)

    def settings(self, **overrides) -> Settings:
        """In-process settings that use this server."""
        return Settings(chroma_host=self.host, chroma_port=self.port, **overrides)


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory) -> Iterator[Chroma]:
    """chromadb's own server, `chroma run`, on a free port with its data in a temp folder."""
    tmp, port = tmp_path_factory.mktemp("chroma-server"), free_port()
    args = [str(CHROMA), "run", "--path", str(tmp / "data"), "--host", "127.0.0.1"]
    ready = f"http://127.0.0.1:{port}/api/v2/heartbeat"
    proc = start([*args, "--port", str(port)], tmp / "chroma.log", server_env(), ready)
    try:
        yield Chroma("127.0.0.1", port)
    finally:
        stop(proc)


def rag(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run the `rag` command in a child process (env from `server_env`, which sets PYTHONPATH)."""
    command = [sys.executable, "-m", "rag.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def copy_corpus(folder: Path) -> Path:
    """A private copy of the seed corpus."""
    shutil.copytree(CORPUS, folder / "corpus")
    return folder / "corpus"


@dataclass
class Ingested:
    """The seed corpus ingested into a server collection by a real `rag ingest`."""

    chroma: Chroma
    corpus: Path
    cwd: Path
    output: str

    def env(self, **settings: str) -> dict[str, str]:
        """Environment of a `rag` process that reads this index."""
        return self.chroma.env(corpus_dir=str(self.corpus), **settings)


@pytest.fixture(scope="module")
def ingested(chroma_server, tmp_path_factory) -> Ingested:
    """`rag ingest` of the seed corpus into the server's collection 'news'."""
    cwd = tmp_path_factory.mktemp("ingest")
    corpus = copy_corpus(cwd)
    done = rag("ingest", "--quiet", env=chroma_server.env(corpus_dir=str(corpus)), cwd=cwd)
    assert done.returncode == 0, done.stderr
    return Ingested(chroma_server, corpus, cwd, done.stdout)


def assert_exact_quotes(citations: list[dict], corpus: Path) -> None:
    """Every citation's quote is the article's text from start to end."""
    assert citations
    for c in citations:
        text = (corpus / c["source"]).read_text()
        assert text[c["start"] : c["end"]] == c["quote"], c


def test_ingest_writes_to_the_server_not_to_disk(ingested):
    import chromadb

    assert "2 added, 0 updated, 0 removed, 0 unchanged" in ingested.output, ingested.output
    assert not (ingested.cwd / "data").exists(), "nothing may be written to the local store_dir"
    client = chromadb.HttpClient(host=ingested.chroma.host, port=ingested.chroma.port)
    assert client.get_collection("news").count() > 2


def test_retrieval_from_the_server_gives_exact_spans(ingested, embeddings):
    from rag.pipeline import build_retriever

    retriever = build_retriever(ingested.chroma.settings(), embeddings)
    evidence = retriever(SOLDIERS)
    assert evidence and evidence[0].source == OFF_RAMP, evidence
    for e in evidence:
        assert retriever.index.article(e.source)[1][e.start : e.end] == e.text


def test_rag_ask_json_through_the_server_with_the_default_llm(ingested):
    done = rag("ask", "--json", SOLDIERS, env=ingested.env(), cwd=ingested.cwd)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert "40" in data["answer"] and OFF_RAMP in {c["source"] for c in data["citations"]}, data
    assert_exact_quotes(data["citations"], ingested.corpus)


def test_reingest_skips_unchanged_articles(ingested):
    done = rag("ingest", "--quiet", env=ingested.env(), cwd=ingested.cwd)
    assert done.returncode == 0, done.stderr
    assert "0 added, 0 updated, 0 removed, 2 unchanged" in done.stdout, done.stdout
    assert "(0 chunks written)" in done.stdout


def test_reingest_updates_and_removes_on_the_server(chroma_server, tmp_path, embeddings):
    from rag.pipeline import open_index_for

    corpus = copy_corpus(tmp_path)
    env = chroma_server.env(corpus_dir=str(corpus), collection="edits")
    assert "2 added" in rag("ingest", "--quiet", env=env, cwd=tmp_path).stdout
    path = corpus / OFF_RAMP
    path.write_text(path.read_text().replace("killed 40 Indian", "killed 44 Indian"))
    (corpus / MEDIATION).unlink()
    done = rag("ingest", "--quiet", env=env, cwd=tmp_path)
    assert "0 added, 1 updated, 1 removed, 0 unchanged" in done.stdout, done.stdout + done.stderr
    index = open_index_for(chroma_server.settings(collection="edits"), embeddings)
    assert "killed 44 Indian" in index.article(OFF_RAMP)[1]
    assert index.article(MEDIATION) is None and set(index.article_states()) == {OFF_RAMP}


def test_missing_collection_on_the_server_says_run_ingest(chroma_server, embeddings):
    from rag.pipeline import open_index_for

    settings = chroma_server.settings(collection="never_ingested")
    with pytest.raises(IndexMissingError, match=f"{chroma_server.port}.*rag ingest.*RAG_CHROMA"):
        open_index_for(settings, embeddings)


def test_fingerprint_mismatch_on_the_server_says_how_to_fix(ingested, embeddings):
    from rag.pipeline import open_index_for

    settings = ingested.chroma.settings(chunk_size=800)
    with pytest.raises(IndexMismatchError) as err:
        open_index_for(settings, embeddings)
    message = str(err.value)
    assert f"127.0.0.1:{ingested.chroma.port}" in message and "'1000/200'" in message
    assert "RAG_CHUNK_SIZE" in message and "rag ingest --rebuild" in message


@pytest.mark.parametrize("command", [["ingest", "--quiet"], ["ask", "--json", SOLDIERS]])
def test_unreachable_server_fails_with_host_port_and_fix(tmp_path, command):
    port = free_port()  # nothing listens here
    corpus = copy_corpus(tmp_path)
    env = server_env(chroma_host="127.0.0.1", chroma_port=str(port), corpus_dir=str(corpus))
    done = rag(*command, env=env, cwd=tmp_path)
    assert done.returncode == 1
    message = json.loads(done.stdout)["error"] if "--json" in command else done.stderr
    assert f"Cannot reach the Chroma server at http://127.0.0.1:{port}" in message, message
    assert "chroma run" in message and "RAG_CHROMA_HOST" in message
    assert "Traceback" not in done.stderr


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate (and key) for 127.0.0.1 that is its own CA, made by the openssl CLI."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


class TokenProxy:
    """What a team puts in front of `chroma run`, which checks no token (Chroma 1.x): a TLS
    reverse proxy that forwards only requests carrying `Authorization: Bearer <token>`."""

    def __init__(self, upstream: str, token: str, cert: Path, key: Path) -> None:
        self.seen: list[str | None] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def forward(self) -> None:
                auth = self.headers.get("Authorization")
                seen.append(auth)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if auth != f"Bearer {token}":
                    self.reply(401, b"401 Authorization Required", "text/plain")
                    return
                skip = {"host", "content-length", "connection", "authorization"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                up = httpx.request(
                    self.command, upstream + self.path, content=body, headers=headers, timeout=120
                )
                self.reply(up.status_code, up.content, up.headers.get("content-type", ""))

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

            def reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def test_chroma_token_over_tls_is_sent_and_a_wrong_or_missing_one_is_refused_clearly(
    chroma_server, tmp_path, monkeypatch
):
    from rag.chroma import make_client

    token = "team-token-42"
    cert, key = self_signed_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the proxy's certificate (httpx)
    proxy = TokenProxy(f"http://127.0.0.1:{chroma_server.port}", token, cert, key)
    try:
        corpus = copy_corpus(tmp_path)
        env = server_env(
            chroma_host=proxy.url,  # a whole https:// URL; RAG_CHROMA_PORT is then not used
            chroma_token=token,
            corpus_dir=str(corpus),
            collection="behind_proxy",
        )
        done = rag("ingest", "--quiet", env=env, cwd=tmp_path)
        assert done.returncode == 0 and "2 added" in done.stdout, done.stderr
        assert len(proxy.seen) > 3 and set(proxy.seen) == {f"Bearer {token}"}
        assert token not in done.stdout + done.stderr

        with pytest.raises(SettingsError, match="refused the token in RAG_CHROMA_TOKEN") as err:
            make_client(Settings(chroma_host=proxy.url, chroma_token="wrong-1"))
        assert proxy.url in str(err.value) and "wrong-1" not in str(err.value)
        with pytest.raises(SettingsError, match="requires a token.*RAG_CHROMA_TOKEN"):
            make_client(Settings(chroma_host=proxy.url))
    finally:
        proxy.close()
    # `chroma run` itself ignores the header, so a token set for a proxy does no harm without one
    direct = chroma_server.settings(chroma_token=token, collection="behind_proxy")
    assert "behind_proxy" in {c.name for c in make_client(direct).list_collections()}


@dataclass
class LlmServer:
    """A running `python -m llama_cpp.server` with the default model."""

    url: str
    log: Path

    def settings(self, **overrides) -> dict[str, str]:
        """The RAG_* settings that send the LLM calls to this server."""
        return {
            "llm_backend": "openai",
            "openai_base_url": f"{self.url}/v1",
            "openai_model": MODEL_ALIAS,
            "openai_api_key": LLM_KEY,
            **overrides,
        }


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory) -> Iterator[LlmServer]:
    """llama-cpp-python's OpenAI-compatible server with the packaged default GGUF; the API key
    comes from the environment (API_KEY), never the command line."""
    from rag.llm.packaged import ensure_default_model

    model = ensure_default_model(Settings().model_cache_dir)
    tmp, port = tmp_path_factory.mktemp("llm-server"), free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
    args += ["--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(port)]
    args += ["--n_ctx", "4096", "--n_threads", str(os.cpu_count() or 1), "--logits_all", "false"]
    env = {**server_env(), "API_KEY": LLM_KEY}
    proc = start(
        args, tmp / "llm.log", env, f"{url}/v1/models", {"Authorization": f"Bearer {LLM_KEY}"}
    )
    try:
        yield LlmServer(url, tmp / "llm.log")
    finally:
        stop(proc)


def test_rag_ask_with_both_servers(ingested, llm_server):
    env = ingested.env(**llm_server.settings())
    done = rag("ask", "--json", SOLDIERS, env=env, cwd=ingested.cwd)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert "40" in data["answer"] and OFF_RAMP in {c["source"] for c in data["citations"]}, data
    assert_exact_quotes(data["citations"], ingested.corpus)
    assert "POST /v1/chat/completions" in llm_server.log.read_text(), "the answer came elsewhere"
    assert LLM_KEY not in done.stdout + done.stderr


def test_streaming_through_the_llm_server(ingested, llm_server, embeddings):
    from rag.pipeline import build_qa
    from rag.schema import Answer, Retry, Sentence, Token

    qa = build_qa(ingested.chroma.settings(**llm_server.settings()), embeddings=embeddings)
    parts = list(qa.stream(PILOT))
    answer = parts[-1]
    assert isinstance(answer, Answer)
    assert all(isinstance(p, Token | Retry | Sentence) for p in parts[:-1])
    assert len(parts) > 3, parts
    assert "Imran Khan" in answer.answer and OFF_RAMP in {c.source for c in answer.citations}
    for c in answer.citations:
        assert qa.retriever.index.article(c.source)[1][c.start : c.end] == c.quote


def test_wrong_llm_api_key_is_refused_clearly(llm_server):
    from rag.llm import make_llm

    llm = make_llm(Settings(**llm_server.settings(openai_api_key="sk-wrong-key")))
    with pytest.raises(ModelError, match="refused the API key.*RAG_OPENAI_API_KEY") as err:
        llm.invoke("Say hi.")
    assert llm_server.url in str(err.value) and "sk-wrong-key" not in str(err.value)


def test_ollama_backend_at_a_server_without_the_model_says_what_to_fix(llm_server):
    from rag.llm import make_llm

    llm = make_llm(Settings(llm_backend="ollama", ollama_base_url=llm_server.url))
    with pytest.raises(ModelError, match="ollama pull .*RAG_OLLAMA_MODEL"):
        llm.invoke("Say hi.")


def test_the_service_waits_for_a_chroma_server_that_starts_late(tmp_path, embeddings):
    """`rag serve` started before the shared Chroma server says so, then comes up on its own."""
    from rag.errors import StoreUnavailableError
    from rag.pipeline import run_ingest
    from tests.conftest import fake_chat
    from ui.loader import Loader
    from ui.service import ChatService

    port = free_port()
    settings = Settings(chroma_host="127.0.0.1", chroma_port=port, corpus_dir=CORPUS)
    loader = Loader(settings, llm=fake_chat("unused"), embeddings=embeddings, retry_every=0.2)
    service = ChatService(settings, loader)
    service.start()
    assert not loader.wait_ready(60)
    assert isinstance(loader.error, StoreUnavailableError), loader.error
    assert "Cannot reach the Chroma server" in service.status()["message"]

    args = [str(CHROMA), "run", "--path", str(tmp_path / "data"), "--host", "127.0.0.1"]
    ready = f"http://127.0.0.1:{port}/api/v2/heartbeat"
    proc = start([*args, "--port", str(port)], tmp_path / "chroma.log", server_env(), ready)
    try:
        run_ingest(settings, progress=False)
        deadline = time.monotonic() + 60
        while service.state != "ready" and time.monotonic() < deadline:  # retries on its own
            time.sleep(0.2)
        assert service.state == "ready", loader.error
        assert service.article(OFF_RAMP) is not None
    finally:
        stop(proc)
