"""Shared helpers for the benchmarks: offline environment, timing, percentiles, peak memory."""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import socket
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rag.settings import OFFLINE_ENV  # the same offline settings as the app's entry point

ROOT = Path(__file__).resolve().parent.parent
BBC_DIR = ROOT.parent / "shared" / "corpora" / "bbc"
SEED_CORPUS = ROOT / "corpus"
DEV_SET = ROOT / "eval" / "dev.jsonl"


def offline() -> None:
    """Make sure nothing tries a model hub or sends telemetry; call before any model is loaded."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


@contextmanager
def timer() -> Iterator[list[float]]:
    """`with timer() as t: ...`; afterwards `t[0]` holds the elapsed seconds."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, like numpy's default."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def p50(values: list[float]) -> float:
    """Median."""
    return statistics.median(values) if values else float("nan")


def _proc_status_mb(key: str, pid: int | str = "self") -> float | None:
    """A memory figure (VmRSS, VmHWM, ...) of a process from /proc, in MiB; None if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:  # no /proc, or the process is gone
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB.

    VmHWM (Linux) is preferred: getrusage's ru_maxrss survives fork+exec, so a child process
    would report its parent's peak.
    """
    hwm = _proc_status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process (default: this one) right now, in MiB; NaN if unknown."""
    rss = _proc_status_mb("VmRSS", pid)
    return rss if rss is not None else float("nan")


def cpu_load() -> str:
    """The 1/5/15-minute load averages, to tell whether a figure was taken under contention."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def machine() -> str:
    """CPU model, core count and memory, for the report."""
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return f"{model}, {os.cpu_count()} CPUs, {pages / 2**30:.0f} GiB"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def copy_articles(src: Path, dest: Path, limit: int | None = None) -> list[Path]:
    """Copy the articles of the topic folders under `src` (not its README) into `dest`.

    With `limit`, take that many spread evenly over the sorted list, so every topic appears.
    """
    files = sorted(p for p in src.glob("*/*.txt") if p.is_file())
    if limit is not None and limit < len(files):
        step = len(files) / limit
        files = [files[int(i * step)] for i in range(limit)]
    copied = []
    for path in files:
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied.append(target)
    return copied


def dev_questions(prefix: str) -> list[str]:
    """Questions of the dev set whose id starts with `prefix` (first turns of conversations)."""
    out = []
    for line in DEV_SET.read_text().splitlines():
        case = json.loads(line)
        if not case["id"].startswith(prefix):
            continue
        out.append(case["question"] if "question" in case else case["turns"][0]["question"])
    return out


def row(label: str, ours: float, raw: float, unit: str) -> str:
    """One aligned line: label, ours, raw, ratio ours/raw."""
    ratio = ours / raw if raw else float("nan")
    return f"{label:<34} ours {ours:>10.3f} {unit:<9} raw {raw:>10.3f} {unit:<9} ratio {ratio:6.2f}"
