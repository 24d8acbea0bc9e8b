"""Load: N concurrent clients x M questions against a real `rag serve`, half through
POST /api/ask and half through the Gradio queue (gradio_client, the /ask endpoint).

Each client sends a question every --interval seconds without waiting for the previous answer
(open loop), so N / interval questions per second are offered however slow the answers get,
and the run ends about M x interval seconds plus the time to answer what was admitted.

Every request ends as one of: answered (a valid Answer), rejected cleanly (HTTP 429/503 with
Retry-After; for Gradio, "Queue is full" or our busy / rate-limit message), or error (anything
else). Prints counts, latency percentiles of answers and of rejections, throughput, and the
server's RSS sampled from /proc/<pid>/status. Nothing is asserted; tests/test_load.py does.

    nice -n 19 .venv/bin/python bench/load.py                      # starts its own server
    .venv/bin/python bench/load.py --clients 20 --questions 10 --queue-limit 4 --max-tokens 48
    .venv/bin/python bench/load.py --url http://127.0.0.1:7860 --pid 1234   # a running server
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from _common import (
    OFFLINE_ENV,
    ROOT,
    SEED_CORPUS,
    cpu_load,
    current_rss_mb,
    dev_questions,
    free_port,
    percentile,
)

# Messages of a clean Gradio rejection: Gradio's full queue, and our service's RagErrors.
GRADIO_REJECTIONS = (
    "Queue is full",
    "already waiting for the model",
    "Too many questions",
    "still loading",
    # The door refuses /ask before Gradio queues it (503 with Retry-After, ui/gradio_routes.py);
    # gradio_client raises that as an HTTP status error without the body.
    "503 Service Unavailable",
)


@dataclass
class Result:
    """One request: which way it went, how it ended, how long it took."""

    client: int
    via: str  # "api" or "gradio"
    outcome: str  # "answered", "rejected" or "error"
    seconds: float
    detail: str = ""


def classify_api(r: httpx.Response) -> tuple[str, str]:
    """(outcome, detail) of an /api/ask response."""
    if r.status_code == 200:
        body = r.json()
        ok = isinstance(body.get("answer"), str) and isinstance(body.get("citations"), list)
        return ("answered", "") if ok else ("error", f"200 but not an Answer: {r.text[:200]}")
    retry = r.headers.get("retry-after", "")
    if r.status_code in (429, 503) and retry.isdigit() and int(retry) > 0:
        return "rejected", f"{r.status_code}: {r.json().get('error', '')[:120]}"
    return "error", f"{r.status_code} retry-after={retry!r}: {r.text[:200]}"


def classify_gradio_error(exc: Exception) -> tuple[str, str]:
    """(outcome, detail) of an exception from gradio_client's predict."""
    message = f"{type(exc).__name__}: {exc}"
    clean = any(text in message for text in GRADIO_REJECTIONS)
    return ("rejected" if clean else "error"), message[:200]


def ask_once(
    client: int, via: str, url: str, question: str, headers: dict, gradio, out: list[Result]
) -> None:
    """One question, through the REST API or the Gradio queue; records how it ended."""
    start = time.perf_counter()
    try:
        if via == "api":
            r = httpx.post(
                f"{url}/api/ask", json={"question": question}, headers=headers, timeout=900
            )
            outcome, detail = classify_api(r)
        else:
            try:
                result = gradio.submit(question, [], api_name="/ask").result(timeout=900)
                good = isinstance(result, dict) and isinstance(result.get("answer"), str)
                outcome, detail = ("answered", "") if good else ("error", str(result)[:200])
            except Exception as exc:  # a rejection or a failure: classified by its message
                outcome, detail = classify_gradio_error(exc)
    except Exception as exc:  # connection refused, reset, timeout: the server failed
        outcome, detail = "error", f"{type(exc).__name__}: {exc}"[:200]
    out.append(Result(client, via, outcome, time.perf_counter() - start, detail))


def run_client(
    index: int,
    via: str,
    url: str,
    questions: list[str],
    token: str,
    interval: float,
    offset: float,
    out: list[Result],
) -> None:
    """Send one question every `interval` seconds (open loop: without waiting for the answer
    to the previous one, so the offered load does not drop when the server slows down)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    gradio = None
    if via == "gradio":
        from gradio_client import Client

        gradio = Client(url + "/", verbose=False, headers=headers)
    start = time.monotonic() + offset
    asks = []
    for k, question in enumerate(questions):
        time.sleep(max(0.0, start + k * interval - time.monotonic()))
        asks.append(
            threading.Thread(
                target=ask_once, args=(index, via, url, question, headers, gradio, out)
            )
        )
        asks[-1].start()
    for t in asks:
        t.join()
    if gradio is not None:
        gradio.close()


def run_load(
    url: str,
    pid: int,
    clients: int,
    questions: int,
    token: str = "",
    interval: float = 2.0,
    warmup: bool = True,
) -> dict:
    """Run the load and return the figures (see `report`)."""
    pool = dev_questions("seed-")
    if warmup:  # the first answer pages the model in: measure memory from a warm server
        httpx.post(
            f"{url}/api/ask",
            json={"question": pool[0]},
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=600,
        )
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(current_rss_mb(pid))
            stop.wait(0.25)

    before = current_rss_mb(pid)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    results: list[Result] = []
    threads = [
        threading.Thread(
            target=run_client,
            args=(
                i,
                "api" if i % 2 == 0 else "gradio",
                url,
                [pool[(i + k) % len(pool)] for k in range(questions)],
                token,
                interval,
                interval * i / clients,  # spread the clients over one interval
                results,
            ),
        )
        for i in range(clients)
    ]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    time.sleep(2.0)  # let the server settle (abandoned work, garbage) before "after"
    stop.set()
    sampler.join()
    after = current_rss_mb(pid)
    return summarise(results, elapsed, before, max([before, after, *samples]), after, pid)


def summarise(
    results: list[Result], elapsed: float, before: float, peak: float, after: float, pid: int
) -> dict:
    """Counts per route and outcome, latency percentiles, throughput, memory."""
    figures: dict = {"requests": len(results), "seconds": round(elapsed, 1)}
    for via in ("api", "gradio", "all"):
        mine = [r for r in results if via in ("all", r.via)]
        row: dict = {
            o: sum(r.outcome == o for r in mine) for o in ("answered", "rejected", "error")
        }
        for outcome in ("answered", "rejected"):
            times = [r.seconds for r in mine if r.outcome == outcome]
            row[f"{outcome}_p"] = {q: round(percentile(times, q), 3) for q in (50, 95, 99)}
        figures[via] = row
    figures["answers_per_minute"] = round(figures["all"]["answered"] / elapsed * 60, 2)
    figures["rss_mb"] = {"before": round(before), "peak": round(peak), "after": round(after)}
    figures["server_alive"] = Path(f"/proc/{pid}").exists()
    figures["errors"] = [asdict(r) for r in results if r.outcome == "error"][:20]
    kinds = Counter(f"{r.via} {r.detail[:70]}" for r in results if r.outcome == "rejected")
    figures["rejections"] = [f"{n} x {kind}" for kind, n in kinds.most_common(8)]
    return figures


def report(f: dict) -> str:
    """The figures as an aligned text table."""
    lines = [
        f"{f['requests']} requests in {f['seconds']} s; "
        f"{f['answers_per_minute']} answers/min; server alive: {f['server_alive']}",
        f"{'route':<7} {'answered':>8} {'rejected':>8} {'errors':>6}   "
        f"{'answer p50/p95/p99 s':>22}   {'rejection p50/p95/p99 s':>24}",
    ]
    for via in ("api", "gradio", "all"):
        r = f[via]
        ans = "/".join(f"{v:.2f}" for v in r["answered_p"].values())
        rej = "/".join(f"{v:.3f}" for v in r["rejected_p"].values())
        lines.append(
            f"{via:<7} {r['answered']:>8} {r['rejected']:>8} {r['error']:>6}   {ans:>22}   {rej:>24}"
        )
    m = f["rss_mb"]
    lines.append(f"server RSS MiB: before {m['before']}, peak {m['peak']}, after {m['after']}")
    for detail in f["rejections"]:
        lines.append(f"  rejected: {detail}")
    for err in f["errors"]:
        lines.append(f"  ERROR {err['via']} client {err['client']}: {err['detail']}")
    return "\n".join(lines)


def start_server(args: argparse.Namespace, tmp: Path) -> tuple[subprocess.Popen, str]:
    """Ingest the seed corpus into a temp store and start `rag serve` on a free port."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RAG_")},
        **OFFLINE_ENV,
        "RAG_STORE_DIR": str(tmp / "chroma"),
        "RAG_CORPUS_DIR": str(SEED_CORPUS),
        "RAG_QUEUE_LIMIT": str(args.queue_limit),
        "RAG_RATE_LIMIT_PER_MINUTE": str(args.rate_limit),
        "RAG_LLM_MAX_TOKENS": str(args.max_tokens),
    }
    rag = str(ROOT / ".venv" / "bin" / "rag")
    subprocess.run([rag, "ingest", "--quiet"], env=env, check=True, capture_output=True, cwd=tmp)
    port = free_port()
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 (open for the server's lifetime)
    proc = subprocess.Popen(
        [rag, "serve", "--port", str(port)], env=env, cwd=tmp, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"rag serve exited:\n{(tmp / 'server.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).json()["status"] == "ready":
                return proc, url
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise SystemExit("rag serve was not ready after 600 s")


def main() -> None:
    """Parse arguments, start a server unless --url is given, run the load, print figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--questions", type=int, default=10, help="per client")
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between one client's questions"
    )
    parser.add_argument("--queue-limit", type=int, default=4, help="RAG_QUEUE_LIMIT")
    parser.add_argument("--rate-limit", type=int, default=1000, help="per client and minute")
    parser.add_argument("--max-tokens", type=int, default=48, help="RAG_LLM_MAX_TOKENS")
    parser.add_argument("--url", help="an already running server (its settings then apply)")
    parser.add_argument("--pid", type=int, help="the running server's process id, for RSS")
    parser.add_argument("--token", default="", help="its RAG_API_TOKEN, if set")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.url and not args.pid:
        parser.error("--url needs --pid (to sample the server's memory)")

    print(f"load at start: {cpu_load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        proc = None
        url, pid = args.url, args.pid
        if url is None:
            proc, url = start_server(args, Path(tmp))
            pid = proc.pid
            print(
                f"server pid {pid} at {url}: queue limit {args.queue_limit}, "
                f"rate limit {args.rate_limit}/min, max tokens {args.max_tokens}",
                flush=True,
            )
        try:
            figures = run_load(url, pid, args.clients, args.questions, args.token, args.interval)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
    print(
        f"{args.clients} clients x {args.questions} questions, one every {args.interval} s "
        "per client (half API, half Gradio)"
    )
    print(report(figures))
    print(f"load at end: {cpu_load()}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
