"""Helpers for tests that run a real `rag serve` process on a free localhost port."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
READY_TIMEOUT = 300.0  # a loaded CI box may need minutes to load the models

_store: Path | None = None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def server_env(**settings: str) -> dict[str, str]:
    """The environment for a child process: no inherited RAG_* settings, offline, plus these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        ANONYMIZED_TELEMETRY="False",
        GRADIO_ANALYTICS_ENABLED="False",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update({f"RAG_{k.upper()}": v for k, v in settings.items()})
    return env


def ingested_store() -> Path:
    """A temp index of the seed corpus built by a real `rag ingest`; built once per session."""
    global _store
    if _store is None:
        tmp = Path(tempfile.mkdtemp(prefix="rag-test-store-"))
        atexit.register(shutil.rmtree, tmp, True)
        store = tmp / "chroma"
        env = server_env(corpus_dir=str(CORPUS), store_dir=str(store))
        done = subprocess.run(
            [sys.executable, "-m", "rag.cli", "ingest", "--quiet"],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"rag ingest failed:\n{done.stdout}\n{done.stderr}"
        _store = store
    return _store


class Server:
    """A `rag serve` child process with its own settings (RAG_* variables) and log file."""

    def __init__(self, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = Path(tempfile.mkdtemp(prefix="rag-test-server-"))
        self.log_path = self.workdir / "server.log"
        env = server_env(**settings)
        with open(self.log_path, "wb") as log:
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
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

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
