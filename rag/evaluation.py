"""`rag eval`: run a question file through the real pipeline and measure answer quality.

Question file (JSONL), one object per line:
  {"id", "question", "sources": [...], "facts": ["40", ["peace", "de-escalation"]]}
  {"id", "question", "unanswerable": true}
  {"id", "turns": [{"question", "sources", "facts"}, ...]}   # a conversation; later turns see history
`facts` entries are substrings the answer must contain (a list entry means: any one of these).
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.claims import unsupported_facts
from rag.errors import RagError
from rag.schema import Evidence

if TYPE_CHECKING:
    from rag.chain import QA


@dataclass
class Case:
    """One question to ask, with what a right answer must show."""

    id: str
    question: str
    sources: list[str] = field(default_factory=list)
    facts: list[str | list[str]] = field(default_factory=list)
    unanswerable: bool = False
    conversation: str | None = None  # id of the conversation it belongs to
    turn: int = 0


@dataclass
class CaseResult:
    """What the pipeline did with one case."""

    id: str
    question: str
    answer: str
    refused: bool
    unanswerable: bool
    retrieved: list[str]  # article sources in evidence order, deduplicated
    cited: list[str]
    facts_ok: bool | None
    unsupported_facts: list[str]
    seconds: float
    rewritten: str = ""
    removed: list[str] = field(default_factory=list)  # sentences the verifier dropped


def load_cases(path: Path) -> list[Case]:
    """Read a JSONL question file; raise RagError naming the bad line."""
    cases: list[Case] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if "turns" in row:
                for i, turn in enumerate(row["turns"]):
                    cases.append(_case(turn, f"{row['id']}.{i + 1}", row["id"], i))
            else:
                cases.append(_case(row, row["id"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RagError(f"{path}:{number}: not a valid question line ({exc}).") from exc
    return cases


def _case(
    row: dict[str, Any], case_id: str, conversation: str | None = None, turn: int = 0
) -> Case:
    return Case(
        id=case_id,
        question=row["question"],
        sources=list(row.get("sources", [])),
        facts=list(row.get("facts", [])),
        unanswerable=bool(row.get("unanswerable", False)),
        conversation=conversation,
        turn=turn,
    )


def compose_corpus(mounts: list[tuple[Path, str]], target: Path) -> Path:
    """Copy several corpus folders into one, each under its prefix ("" = the root)."""
    from rag.loading import iter_corpus_files

    for folder, prefix in mounts:
        for path in iter_corpus_files(folder):
            dest = target / prefix / path.relative_to(folder)
            if not dest.exists() or dest.stat().st_size != path.stat().st_size:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
    return target


def _fact_present(fact: str | list[str], answer: str) -> bool:
    options = fact if isinstance(fact, list) else [fact]
    return any(option.lower() in answer.lower() for option in options)


def run_cases(qa: QA, cases: list[Case], progress: bool = True) -> list[CaseResult]:
    """Ask every case through `qa` (a `rag.chain.QA`); conversations carry their history."""
    results: list[CaseResult] = []
    history: dict[str, list[tuple[str, str]]] = {}
    for i, case in enumerate(cases, start=1):
        past = history.setdefault(case.conversation, []) if case.conversation else []
        started = time.perf_counter()
        answer = qa.ask(case.question, list(past))
        seconds = time.perf_counter() - started
        evidence = qa.retriever(answer.question)
        retrieved = list(dict.fromkeys(e.source for e in evidence))
        unsupported = unsupported_facts(answer)
        results.append(
            CaseResult(
                id=case.id,
                question=case.question,
                answer=answer.answer,
                refused=answer.refused,
                unanswerable=case.unanswerable,
                retrieved=retrieved,
                cited=list(dict.fromkeys(c.source for c in answer.citations)),
                facts_ok=None
                if case.unanswerable
                else (
                    not answer.refused and all(_fact_present(f, answer.answer) for f in case.facts)
                ),
                unsupported_facts=unsupported,
                seconds=round(seconds, 2),
                rewritten=answer.question if answer.question != case.question else "",
                removed=answer.removed,
            )
        )
        if case.conversation:
            past.append((case.question, answer.answer))
        if progress:
            mark = (
                "ok" if (results[-1].facts_ok or (case.unanswerable and answer.refused)) else "--"
            )
            print(
                f"[{i}/{len(cases)}] {mark} {seconds:5.1f}s {case.id}: {answer.answer[:90]}",
                flush=True,
            )
    return results


def run_retrieval(
    retriever: Callable[[str], list[Evidence]], cases: list[Case], k: int = 5
) -> dict[str, Any]:
    """Retrieval alone, no LLM: is the expected article among the evidence, and are the key
    facts in the evidence text? Follow-up turns are left out (they need the LLM's rewrite)."""
    asked = [c for c in cases if not c.unanswerable and c.turn == 0]
    ranks: list[int | None] = []
    facts = 0
    missed: list[str] = []
    seconds: list[float] = []
    for case in asked:
        started = time.perf_counter()
        evidence = retriever(case.question)
        seconds.append(time.perf_counter() - started)
        sources = list(dict.fromkeys(e.source for e in evidence))[:k]
        ranks.append(next((i for i, s in enumerate(sources, 1) if s in case.sources), None))
        text = " ".join(e.text for e in evidence)
        found = all(_fact_present(f, text) for f in case.facts)
        facts += found
        if not found or ranks[-1] is None:
            missed.append(case.id)
    return {
        "questions": len(asked),
        **_rank_metrics(ranks, k),
        "key_facts_in_evidence": _ratio(facts, len(asked)),
        "retrieval_p50_ms": round(statistics.median(seconds) * 1000, 1) if seconds else None,
        "retrieval_p95_ms": round(_percentile(seconds, 95) * 1000, 1) if seconds else None,
        "facts_or_article_missed": missed,
    }


def summarise(cases: list[Case], results: list[CaseResult], k: int = 5) -> dict[str, Any]:
    """The metrics of an evaluation run."""
    answerable = [(c, r) for c, r in zip(cases, results, strict=True) if not c.unanswerable]
    unanswerable = [(c, r) for c, r in zip(cases, results, strict=True) if c.unanswerable]

    def rank(case: Case, result: CaseResult) -> int | None:
        hits = [i for i, s in enumerate(result.retrieved[:k], start=1) if s in case.sources]
        return hits[0] if hits else None

    ranks = [rank(c, r) for c, r in answerable]
    cited_total = sum(len(r.cited) for _, r in answerable)
    cited_right = sum(sum(s in c.sources for s in r.cited) for c, r in answerable)
    seconds = [r.seconds for r in results]
    return {
        "questions": len(results),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        **_rank_metrics(ranks, k),
        "expected_article_cited": _ratio(
            sum(any(s in c.sources for s in r.cited) for c, r in answerable), len(answerable)
        ),
        "key_facts_present": _ratio(sum(bool(r.facts_ok) for _, r in answerable), len(answerable)),
        "citation_precision": _ratio(cited_right, cited_total),
        "citation_recall": _ratio(
            sum(any(s in r.cited for s in c.sources) for c, r in answerable), len(answerable)
        ),
        "false_refusals": _ratio(sum(r.refused for _, r in answerable), len(answerable)),
        "refusal_accuracy": _ratio(sum(r.refused for _, r in unanswerable), len(unanswerable)),
        "unsupported_names_or_numbers": sum(len(r.unsupported_facts) for r in results),
        "latency_p50_s": round(statistics.median(seconds), 2) if seconds else None,
        "latency_p95_s": round(_percentile(seconds, 95), 2) if seconds else None,
    }


def below_floors(metrics: dict[str, Any], floors: dict[str, float]) -> list[str]:
    """What falls below its floor ("hit@5 0.8 < 0.9"), and any unsupported fact shown."""
    failed = [
        f"{name} {metrics[name]} < {floor}"
        for name, floor in floors.items()
        if metrics.get(name) is not None and metrics[name] < floor
    ]
    if metrics.get("unsupported_names_or_numbers"):
        failed.append("unsupported facts shown")
    return failed


def _rank_metrics(ranks: list[int | None], k: int) -> dict[str, float | None]:
    """hit@k and mean reciprocal rank of the expected article's ranks (None: not found)."""
    return {
        f"hit@{k}": _ratio(sum(r is not None for r in ranks), len(ranks)),
        "mrr": round(sum(1 / r for r in ranks if r) / len(ranks), 3) if ranks else None,
    }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def report(metrics: dict[str, Any], results: list[CaseResult]) -> str:
    """A readable summary for the terminal."""
    lines = ["", "Metric                          Value", "-" * 40]
    lines += [f"{name:<32}{value}" for name, value in metrics.items()]
    misses = [r for r in results if (r.facts_ok is False) or (r.unanswerable and not r.refused)]
    if misses:
        lines += ["", "Misses:"]
        lines += [f"  {r.id}: {r.question} -> {r.answer[:120]}" for r in misses]
    return "\n".join(lines)


def write_results(path: Path, metrics: dict[str, Any], results: list[CaseResult]) -> None:
    """Save metrics and every case's outcome as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"metrics": metrics, "cases": [asdict(r) for r in results]}, indent=2),
        encoding="utf-8",
    )
