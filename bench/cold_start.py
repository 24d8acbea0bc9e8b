"""Cold start: seconds from `rag serve` to listening, to ready, and to the first answer.

The server runs against a temp store holding the ingested seed corpus, on a free port.

    .venv/bin/python bench/cold_start.py [--question TEXT] [--pause SECONDS]

`--pause` waits that long after "ready" before asking, as a user typing the first question
would; the server reads the prompt's fixed part (instructions, examples) meanwhile.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from _common import OFFLINE_ENV, ROOT, SEED_CORPUS, cpu_load, dev_questions, free_port, machine

RAG = ROOT / ".venv" / "bin" / "rag"
TIMEOUT = 600.0


def listening(port: int) -> bool:
    """True once something accepts TCP connections on the port."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(check, what: str, proc: subprocess.Popen, log: Path) -> None:
    """Poll `check` every 50 ms until it is true; fail with the server log if it dies."""
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if proc.poll() is not None:
            raise SystemExit(
                f"rag serve exited ({proc.returncode}) before {what}:\n{log.read_text()}"
            )
        if time.monotonic() > deadline:
            raise SystemExit(f"no {what} after {TIMEOUT:.0f}s:\n{log.read_text()}")
        time.sleep(0.05)


def main() -> None:
    """Ingest the seed corpus into a temp store, start the server, time the milestones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--question", default=dev_questions("seed-")[0])
    parser.add_argument("--pause", type=float, default=0.0, help="seconds idle after ready")
    args = parser.parse_args()

    print(f"machine: {machine()}; load at start: {cpu_load()}")
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        env = {
            **os.environ,
            **OFFLINE_ENV,
            "RAG_STORE_DIR": str(Path(tmp) / "chroma"),
            "RAG_CORPUS_DIR": str(SEED_CORPUS),
        }
        subprocess.run([str(RAG), "ingest"], env=env, check=True, capture_output=True, cwd=tmp)
        port = free_port()
        log = Path(tmp) / "serve.log"
        base = f"http://127.0.0.1:{port}"
        with log.open("w") as out:
            start = time.perf_counter()
            proc = subprocess.Popen(
                [str(RAG), "serve", "--port", str(port)],
                env=env,
                cwd=tmp,  # no stray .env is read
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_for(lambda: listening(port), "listening", proc, log)
                t_listen = time.perf_counter() - start

                def ready() -> bool:
                    status = httpx.get(f"{base}/healthz", timeout=5).json()["status"]
                    if status == "error":
                        raise SystemExit(f"server reports an error:\n{log.read_text()}")
                    return status == "ready"

                wait_for(ready, "ready", proc, log)
                t_ready = time.perf_counter() - start
                time.sleep(args.pause)
                t_asked = time.perf_counter() - start
                reply = httpx.post(
                    f"{base}/api/ask", json={"question": args.question}, timeout=TIMEOUT
                )
                reply.raise_for_status()
                t_answer = time.perf_counter() - start
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    answer = reply.json()
    print(f"question: {args.question}")
    print(f"answer: {answer['answer']} (refused: {answer['refused']})")
    print(f"seconds to listening     {t_listen:7.2f}")
    print(f"seconds to ready         {t_ready:7.2f}")
    print(f"idle after ready         {args.pause:7.2f}")
    print(
        f"seconds to first answer  {t_answer:7.2f}  (that answer alone: {t_answer - t_asked:.2f})"
    )
    print(f"load at end: {cpu_load()}")


if __name__ == "__main__":
    main()
