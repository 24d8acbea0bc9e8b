"""llama.cpp build flags: build llama-cpp-python once per flag set and time the default model.

Each variant is built into its own wheel (cached in ~/.cache/rag/wheels/, as by setup.sh),
installed into its own throw-away venv, and timed in a child process on the same prompt: our
answer prompt (system rules, two worked examples, five evidence sentences, a question).

- prompt processing: tokens/s over the whole prompt, from an empty cache;
- generation: tokens/s over 64 greedy tokens.

The baseline is the AVX2 build scripts/setup.sh used before (`avx2`). The CPUs here
advertise AMX, and a native (-march=native) build crashes in ggml_backend_amx_mul_mat, so
every variant sets GGML_NATIVE=OFF and leaves AMX off.

    .venv/bin/python bench/llama_build.py [--variants avx2,avx512] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
VARIANTS = {
    "avx2": BASE,
    "avx512": BASE + " -DGGML_AVX512=ON",
    "avx512-vnni-bf16": BASE
    + " -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON",
}
VERSION = "0.3.36"
CACHE = Path.home() / ".cache" / "rag" / "wheels"


def answer_messages() -> list[dict[str, str]]:
    """Our answer prompt for one seed question, with five evidence sentences."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from rag.prompts import ANSWER_PROMPT

    evidence = "\n".join(
        f"[{i}] (India and Pakistan) {s}"
        for i, s in enumerate(
            [
                "Pakistan's Prime Minister Imran Khan announced that his country would be "
                "releasing the captured Indian pilot as a gesture of peace.",
                "The two nuclear-armed neighbors have been locked in a bitter dispute since "
                "February, when a suicide bombing in Indian-controlled Kashmir killed 40 "
                "Indian soldiers.",
                "India responded by launching airstrikes on what it said was a militant "
                "training camp in Pakistan.",
                "US President Donald Trump urged both countries to exercise restraint.",
                "China offered to mediate between the two countries.",
            ],
            start=1,
        )
    )
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    return [
        {"role": roles[m.type], "content": str(m.content)}
        for m in ANSWER_PROMPT.format_messages(
            evidence=evidence, question="Why did Pakistan release the captured Indian pilot?"
        )
    ]


def measure(model: str, messages: list[dict[str, str]], runs: int, threads: int) -> dict:
    """Child side: time prompt processing and generation with the installed llama_cpp."""
    from llama_cpp import Llama

    llm = Llama(model_path=model, n_ctx=4096, n_batch=512, n_threads=threads, verbose=False)
    pp, tg, n_prompt = [], [], 0
    for _ in range(runs):
        llm.reset()  # forget the cached prompt: the whole prompt is processed again
        start = time.perf_counter()
        out = llm.create_chat_completion(messages=messages, max_tokens=1, temperature=0.0)
        pp.append(time.perf_counter() - start)
        n_prompt = out["usage"]["prompt_tokens"]
        start = time.perf_counter()
        out = llm.create_chat_completion(
            messages=messages,
            max_tokens=64,
            temperature=0.0,
            stop=[],
        )
        elapsed = time.perf_counter() - start  # the prompt is cached: this is generation
        tg.append(out["usage"]["completion_tokens"] / elapsed)
    return {
        "prompt_tokens": n_prompt,
        "pp_tok_s": n_prompt / min(pp),
        "pp_s": min(pp),
        "tg_tok_s": max(tg),
    }


def build(name: str, flags: str) -> Path:
    """The wheel for one flag set, built once (about 4-15 minutes on 2 cores)."""
    folder = CACHE / f"llama-cpp-python-{VERSION}-{name}"  # scripts/setup.sh uses these too
    wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    if wheels:
        return wheels[-1]
    folder.mkdir(parents=True, exist_ok=True)
    print(f"building {name}: {flags}", flush=True)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-q"]
        + [f"llama-cpp-python=={VERSION}", "-w", str(folder)],
        env={**os.environ, "CMAKE_ARGS": flags},
        check=True,
    )
    print(f"built {name} in {time.perf_counter() - started:.0f}s", flush=True)
    return sorted(folder.glob("llama_cpp_python-*.whl"))[-1]


def main() -> None:
    """Build, install and time each variant; print tokens/s and ratios to the first variant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)  # child: model, messages
    args = parser.parse_args()
    if args.measure:
        model, messages = args.measure
        print(
            json.dumps(
                measure(model, json.loads(Path(messages).read_text()), args.runs, args.threads)
            )
        )
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from rag.llm.packaged import ensure_default_model
    from rag.settings import Settings

    model = str(ensure_default_model(Settings().model_cache_dir))
    messages = Path(tempfile.mkdtemp(prefix="llama-bench-")) / "messages.json"
    messages.write_text(json.dumps(answer_messages()))
    results = {}
    for name in args.variants.split(","):
        wheel = build(name, VARIANTS[name])
        with tempfile.TemporaryDirectory(prefix=f"llama-{name}-") as tmp:
            venv = Path(tmp) / "venv"
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            python = str(venv / "bin" / "python")
            subprocess.run(
                [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
                check=True,
            )
            child = subprocess.run(
                [python, __file__, "--measure", model, str(messages), "--runs", str(args.runs)]
                + ["--threads", str(args.threads)],
                check=True,
                capture_output=True,
                text=True,
            )
            results[name] = json.loads(child.stdout.strip().splitlines()[-1])
            r = results[name]
            print(
                f"{name:<18} prompt {r['prompt_tokens']} tokens in {r['pp_s']:.2f}s = "
                f"{r['pp_tok_s']:.1f} tok/s; generation {r['tg_tok_s']:.1f} tok/s",
                flush=True,
            )
    first = next(iter(results.values()))
    print(f"\n{'variant':<18}{'prompt tok/s':>14}{'ratio':>8}{'gen tok/s':>12}{'ratio':>8}")
    for name, r in results.items():
        print(
            f"{name:<18}{r['pp_tok_s']:>14.1f}{r['pp_tok_s'] / first['pp_tok_s']:>8.2f}"
            f"{r['tg_tok_s']:>12.1f}{r['tg_tok_s'] / first['tg_tok_s']:>8.2f}"
        )


if __name__ == "__main__":
    main()
