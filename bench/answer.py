"""Answer latency: our `QA.stream` against raw `Llama.create_chat_completion(stream=True)`.

Both sides use the same loaded `llama_cpp.Llama` (ours wraps it as `LlamaCppChat.client`), so
n_ctx, threads and weights are identical, and the raw side makes the identical LLM calls: our
ANSWER_PROMPT filled with the evidence our retriever returns for the question and, when our
chain asks the model again after an unwarranted refusal, the same second call (RETRY_PROMPT).
So "ours / raw" is what the chain adds around llama.cpp: retrieval, prompt building, LangChain,
streaming and the citation check. llama.cpp reuses the longest cached prompt prefix, so before
every timed question the cache is reset to the fixed few-shot prefix; neither side profits
from the other having just read the same prompt.

    .venv/bin/python bench/answer.py [--questions N]
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


def time_ours(qa: Any, question: str) -> dict[str, Any]:
    """Stream one answer through our pipeline; times of first token, last token, Answer."""
    from rag.chain import RETRY_MARK
    from rag.schema import Answer

    first = last = total = None
    text, retried = "", False
    start = time.perf_counter()
    for part in qa.stream(question):
        now = time.perf_counter() - start
        if isinstance(part, Answer):
            total = now
        elif part == RETRY_MARK:
            retried = True
        elif part:
            first = now if first is None else first
            if not retried:
                last, text = now, text + part
    return {"ttft": first, "last": last, "total": total, "text": text, "retried": retried}


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
    args = parser.parse_args()

    from rag.chain import clean_question, should_retry
    from rag.embeddings import make_embeddings
    from rag.indexing import ingest
    from rag.llm import make_llm
    from rag.pipeline import build_qa, open_index_for
    from rag.prompts import ANSWER_PROMPT, RETRY_PROMPT, format_evidence
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
        client, params = llm.client, greedy(settings)
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
        for i, question in enumerate(asked):
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
            for side in ("ours", "raw") if i % 2 == 0 else ("raw", "ours"):
                prime()
                if side == "ours":
                    result["ours"] = time_ours(qa, question)
                else:
                    result["raw"] = time_raw(client, calls, params)
            ours, raw = result["ours"], result["raw"]
            print(
                f"Q{i + 1}: ours ttft {ours['ttft']:.2f}s total {ours['total']:.2f}s"
                f"{' (retried)' if ours['retried'] else ''} | raw ttft {raw['ttft']:.2f}s "
                f"total {raw['total']:.2f}s | same text: {ours['text'] == raw['text']} | "
                f"{len(evidence)} evidence, retrieval {retrieval[0]:.2f}s"
            )
            rows.append(result)

    def med(side: str, key: str) -> float:
        return p50([r[side][key] for r in rows if r[side][key] is not None])

    print(f"\nrun {started}-{time.strftime('%H:%M:%S')}; load at end: {cpu_load()}")
    print(f"{len(rows)} questions; peak RSS {peak_rss_mb():.0f} MiB")
    print(f"{'p50 seconds':<38}{'ours':>8}{'raw':>8}{'ours/raw':>10}")
    for label, key in (
        ("time to first token", "ttft"),
        ("time to last token (first try)", "last"),
        ("total (same LLM calls; ours verified)", "total"),
    ):
        a, b = med("ours", key), med("raw", key)
        print(f"{label:<38}{a:>8.2f}{b:>8.2f}{a / b:>10.2f}")
    print(f"{'retrieval alone (ours, p50)':<38}{p50([r['retrieval'] for r in rows]):>8.2f}")
    same = sum(r["ours"]["text"] == r["raw"]["text"] for r in rows)
    retried = sum(r["ours"]["retried"] for r in rows)
    print(f"identical first-try text: {same}/{len(rows)}; ours retried after a refusal: {retried}")


if __name__ == "__main__":
    main()
