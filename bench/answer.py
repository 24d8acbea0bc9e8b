"""Answer latency: our `QA.stream` against raw `Llama.create_chat_completion(stream=True)`.

Both sides use the same loaded `llama_cpp.Llama` (ours wraps it as `LlamaCppChat.client`), so
n_ctx, threads and weights are identical, and the raw side makes the identical LLM calls: our
ANSWER_PROMPT filled with the evidence our retriever returns for the question and, when our
chain asks the model again after an unwarranted refusal, the same second call (RETRY_PROMPT).
So "ours / raw" is what the chain adds around llama.cpp: retrieval, prompt building, LangChain,
streaming and the citation check. llama.cpp reuses the longest cached prompt prefix, so before
every timed question the cache is reset to the fixed few-shot prefix; neither side profits
from the other having just read the same prompt.

    .venv/bin/python bench/answer.py [--questions N] [--rounds R]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import SEED_CORPUS, cpu_load, dev_questions, machine, offline, p50, peak_rss_mb, timer

offline()

ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def llama_messages(messages: list[Any]) -> list[dict[str, str]]:
    """LangChain messages -> llama.cpp chat messages."""
    return [{"role": ROLES.get(m.type, "user"), "content": str(m.content)} for m in messages]


def greedy(settings: Any) -> dict[str, Any]:
    """The sampling parameters our LlamaCppChat sends (greedy)."""
    return {
        "max_tokens": settings.llm_max_tokens,
        "temperature": settings.llm_temperature,
        "top_p": 1.0,
        "repeat_penalty": 1.0,
        "stop": [],
    }


class LlamaClock:
    """Wraps `Llama.create_chat_completion` to note when the chain hands llama.cpp its first
    prompt and when llama.cpp yields its first token: the chain's own share of the time to
    first token, measured inside one answer (so the machine's speed drift does not enter)."""

    def __init__(self, client: Any) -> None:
        self.client, self.inner = client, client.create_chat_completion
        self.called: float | None = None
        self.first_chunk: float | None = None

    def __enter__(self) -> LlamaClock:
        self.called = self.first_chunk = None
        self.client.create_chat_completion = self._call
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.create_chat_completion = self.inner

    def _call(self, *args: Any, **kwargs: Any) -> Any:
        if self.called is None:
            self.called = time.perf_counter()
        result = self.inner(*args, **kwargs)
        return self._watch(result) if kwargs.get("stream") else result

    def _watch(self, parts: Any) -> Any:
        for part in parts:
            if self.first_chunk is None and part["choices"][0]["delta"].get("content"):
                self.first_chunk = time.perf_counter()
            yield part


def time_ours(qa: Any, question: str, clock: LlamaClock) -> dict[str, Any]:
    """Stream one answer through our pipeline; times of first token, last token, Answer, and
    the chain's own time before the first token (before llama.cpp's call and after its token)."""
    from rag.schema import Answer, Retry, Sentence, Token

    first = last = total = shown = None
    text, retried = "", False
    with clock:
        start = time.perf_counter()
        for event in qa.stream(question):
            now = time.perf_counter() - start
            if isinstance(event, Sentence) and shown is None:
                shown = now
            if isinstance(event, Answer):
                total = now
            elif isinstance(event, Retry):
                retried = True
            elif isinstance(event, Token) and event.text:
                if first is None:
                    first = now
                    own = (clock.called - start) + (start + now - clock.first_chunk)
                if not retried:
                    last, text = now, text + event.text
    return {
        "ttft": first,
        "last": last,
        "total": total,
        "text": text,
        "retried": retried,
        "chain_before_first": own if first is not None else None,
        "first_sentence": shown,
    }


def time_raw(client: Any, calls: list[list[dict[str, str]]], params: dict) -> dict[str, Any]:
    """Stream the same completions straight from llama.cpp, one after the other.

    `calls[0]` is the answer prompt; `calls[1]`, if any, is built from the first reply
    (the retry our chain makes after a refusal), so it is a function of that reply.
    """
    first = last = None
    text = ""
    start = time.perf_counter()
    for i, messages in enumerate(calls):
        if callable(messages):
            messages = messages(text)
        if not messages:
            continue
        reply = ""
        for part in client.create_chat_completion(messages=messages, stream=True, **params):
            token = part["choices"][0]["delta"].get("content")
            if token:
                now = time.perf_counter() - start
                first = now if first is None else first
                if i == 0:
                    last = now
                reply += token
        text = reply if i == 0 else text
    total = time.perf_counter() - start
    return {"ttft": first, "last": last, "total": total, "text": text}


def main() -> None:
    """Build the pipeline over the seed corpus, time both sides per question, print figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=8, help="seed questions to ask")
    parser.add_argument(
        "--rounds", type=int, default=3, help="times each question is asked on each side"
    )
    args = parser.parse_args()

    from rag.chain import should_retry
    from rag.embeddings import make_embeddings
    from rag.indexing import ingest
    from rag.llm import make_llm
    from rag.pipeline import build_qa, open_index_for
    from rag.prompts import ANSWER_PROMPT, RETRY_PROMPT, format_evidence
    from rag.questions import clean_question
    from rag.settings import Settings

    print(f"machine: {machine()}; load at start: {cpu_load()}")
    started = time.strftime("%H:%M:%S")
    with tempfile.TemporaryDirectory(prefix="bench-answer-") as tmp:
        settings = Settings(store_dir=Path(tmp) / "chroma", corpus_dir=SEED_CORPUS)
        embeddings = make_embeddings(settings)
        ingest(SEED_CORPUS, open_index_for(settings, embeddings, create=True), progress=False)
        with timer() as load:
            llm = make_llm(settings)
        qa = build_qa(settings, llm=llm, embeddings=embeddings)
        # The same pipeline without the trained claim check (similarity decides, as before).
        plain = build_qa(settings.model_copy(update={"claim_check": False}), llm=llm,
                         embeddings=embeddings) if settings.claim_check else None  # fmt: skip
        client, params = llm.client, greedy(settings)
        clock = LlamaClock(client)
        print(
            f"model loaded in {load[0]:.1f}s; n_ctx {client.n_ctx()}, "
            f"threads {client.n_threads}, max_tokens {params['max_tokens']}, greedy"
        )
        prefix = llama_messages(ANSWER_PROMPT.format_messages(evidence="", question=""))

        def prime() -> None:
            # Leave only the fixed system + few-shot prefix in llama.cpp's prompt cache.
            client.create_chat_completion(messages=prefix, **{**params, "max_tokens": 1})

        asked = [clean_question(q) for q in dev_questions("seed-")[: args.questions]]
        prime()
        rows = []
        plan = [(r, i, q) for r in range(args.rounds) for i, q in enumerate(asked)]
        for round_no, i, question in plan:
            with timer() as retrieval:
                evidence = qa.retriever(question)
            inputs = {"evidence": format_evidence(evidence), "question": question}
            calls: list[Any] = [llama_messages(ANSWER_PROMPT.format_messages(**inputs))]
            if evidence and settings.retry_refusals:
                retry = llama_messages(RETRY_PROMPT.format_messages(**inputs))
                calls.append(
                    lambda first, r=retry, ev=evidence: r if should_retry(first, ev) else []
                )
            result: dict[str, Any] = {"retrieval": retrieval[0], "evidence": len(evidence)}
            sides = ["ours", "raw"] + (["plain"] if plain is not None else [])
            for side in sides if (i + round_no) % 2 == 0 else sides[::-1]:
                prime()
                if side == "ours":
                    result["ours"] = time_ours(qa, question, clock)
                elif side == "plain":
                    result["plain"] = time_ours(plain, question, clock)
                else:
                    result["raw"] = time_raw(client, calls, params)
            ours, raw = result["ours"], result["raw"]
            print(
                f"R{round_no + 1} Q{i + 1}: ours ttft {ours['ttft']:.2f}s total {ours['total']:.2f}s"
                f"{' (retried)' if ours['retried'] else ''} | raw ttft {raw['ttft']:.2f}s "
                f"total {raw['total']:.2f}s | same text: {ours['text'] == raw['text']} | "
                f"{len(evidence)} evidence, retrieval {retrieval[0]:.2f}s"
            )
            rows.append(result)

    def med(side: str, key: str) -> float:
        return p50([r[side][key] for r in rows if r[side][key] is not None])

    print(f"\nrun {started}-{time.strftime('%H:%M:%S')}; load at end: {cpu_load()}")
    print(
        f"{len(asked)} questions x {args.rounds} rounds = {len(rows)} timed answers per side; "
        f"peak RSS {peak_rss_mb():.0f} MiB"
    )
    print(f"{'p50 seconds':<38}{'ours':>8}{'raw':>8}{'ours/raw':>10}")
    for label, key in (
        ("time to first token", "ttft"),
        ("time to last token (first try)", "last"),
        ("total (same LLM calls; ours verified)", "total"),
    ):
        a, b = med("ours", key), med("raw", key)
        print(f"{label:<38}{a:>8.2f}{b:>8.2f}{a / b:>10.2f}")
    print(f"{'retrieval alone (ours, p50)':<38}{p50([r['retrieval'] for r in rows]):>8.2f}")
    # The machine's speed drifts between answers; each pair (ours, raw) ran back to back, so the
    # median of the per-pair ratios is the steadier measure of what the chain adds.
    for label, key in (("first token", "ttft"), ("last token", "last"), ("total", "total")):
        pairs = [r["ours"][key] / r["raw"][key] for r in rows if r["ours"][key] and r["raw"][key]]
        print(
            f"median of per-answer ratios ours/raw, {label}: {p50(pairs):.3f} ({len(pairs)} pairs)"
        )
    timed = [r["ours"] for r in rows if r["ours"]["chain_before_first"] is not None]
    own = [t["chain_before_first"] for t in timed]
    share = p50([t["chain_before_first"] / t["ttft"] for t in timed])
    print(
        f"chain's own time before the first token (retrieval, prompt, LangChain; measured "
        f"around llama.cpp's call): p50 {p50(own) * 1000:.0f} ms = {share:.1%} of our TTFT"
    )
    if plain is not None:
        print(f"\n{'p50 seconds':<38}{'checked':>8}{'plain':>8}{'ratio':>10}")
        for label, key in (("first checked sentence shown", "first_sentence"),
                           ("whole verified answer", "total")):  # fmt: skip
            a, b = med("ours", key), med("plain", key)
            print(f"{label:<38}{a:>8.2f}{b:>8.2f}{a / b:>10.2f}")
    same = sum(r["ours"]["text"] == r["raw"]["text"] for r in rows)
    retried = sum(r["ours"]["retried"] for r in rows)
    print(f"identical first-try text: {same}/{len(rows)}; ours retried after a refusal: {retried}")


if __name__ == "__main__":
    main()
