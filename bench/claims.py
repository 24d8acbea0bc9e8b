"""The claim check on the labelled pair set (tests/data/claims/pairs.jsonl): each route's
balanced accuracy, precision and recall on "supported", accuracy per kind, and cost per pair.

Routes:
  names      the deterministic names-and-numbers test alone (rag.claims)
  cosine     names + the old deciding test: embedding similarity >= RAG_SUPPORT_THRESHOLD
  support    names + the trained cross-encoder (rag.support) >= threshold
  llm        names + the packaged LLM as a yes/no judge (P("Yes") from the next-token logits)
  full       the whole check as the pipeline runs it (rag.citations: names, support, answers
             the question), on (question, claim, passage)

    python bench/claims.py --split dev --routes names,cosine,support,full
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import ROOT, machine, offline

PAIRS = ROOT / "tests" / "data" / "claims" / "pairs.jsonl"


def load(split: str) -> list[dict[str, Any]]:
    """The labelled pairs of one split ("dev", "test" or "all")."""
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    return [r for r in rows if split == "all" or r["split"] == split]


def names_ok(row: dict[str, Any]) -> bool:
    """The deterministic test: every name and number of the claim is in the passage, in the
    roles the passage gives them."""
    from rag.claims import miscounted, missing_facts
    from rag.roles import swapped_roles

    claim, passage = row["claim"], row["passage"] + " " + row.get("title", "")
    return not (
        missing_facts(claim, passage, row["question"])
        or miscounted(claim, passage)
        or swapped_roles(claim, row["passage"])
    )


def separation(rows: list[dict[str, Any]], scores: list[float], base: list[bool]) -> dict[str, Any]:
    """AUC of the score alone, and the whole check (names + score) at the threshold that keeps
    95% of the supported pairs."""
    pos = [s for r, s in zip(rows, scores, strict=True) if r["label"] == "supported"]
    neg = [s for r, s in zip(rows, scores, strict=True) if r["label"] != "supported"]
    auc = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    ok = sorted(
        s for r, s, b in zip(rows, scores, base, strict=True) if b and r["label"] == "supported"
    )
    need = len(pos) * 0.95
    floor = ok[max(0, len(ok) - int(need + 0.999))] if len(ok) >= need else min(scores)
    verdicts = [b and s >= floor for b, s in zip(base, scores, strict=True)]
    return {"auc": round(auc, 3), "threshold_keeping_95": round(floor, 4),
            **{k: v for k, v in metrics(rows, verdicts).items() if k != "per_kind"}}  # fmt: skip


def metrics(rows: list[dict[str, Any]], verdicts: list[bool]) -> dict[str, Any]:
    """Balanced accuracy, precision/recall on supported, and accuracy per kind."""
    truth = [r["label"] == "supported" for r in rows]
    tp = sum(t and v for t, v in zip(truth, verdicts, strict=True))
    tn = sum(not t and not v for t, v in zip(truth, verdicts, strict=True))
    pos, neg = sum(truth), len(truth) - sum(truth)
    kept = sum(verdicts)
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r, t, v in zip(rows, truth, verdicts, strict=True):
        per_kind[r["kind"]][0] += int(t == v)
        per_kind[r["kind"]][1] += 1
    return {
        "balanced_accuracy": round((tp / pos + tn / neg) / 2, 3),
        "supported_kept": round(tp / pos, 3),
        "unsupported_caught": round(tn / neg, 3),
        "precision_supported": round(tp / kept, 3) if kept else None,
        "per_kind": {k: f"{a}/{n}" for k, (a, n) in sorted(per_kind.items())},
    }


def route_scores(route: str, rows: list[dict[str, Any]], settings: Any) -> list[float]:
    """A score per pair (higher = supported) for one model-based route."""
    if route == "cosine":
        import numpy as np

        from rag.embeddings import make_embeddings

        emb = make_embeddings(settings)
        a = np.asarray(emb.embed_documents([r["claim"] for r in rows]))
        b = np.asarray(emb.embed_documents([r["passage"] for r in rows]))
        return [float(x) for x in (a * b).sum(axis=1)]
    if route == "support":
        from rag.embeddings import embedding_path
        from rag.support import SupportModel

        model = SupportModel(embedding_path(settings), **_adapter())
        return [s for r in rows for s in model.scores([(r["claim"], r["passage"])])]
    if route == "llm":
        return llm_scores(rows, settings)
    raise SystemExit(f"unknown route {route}")


def llm_scores(rows: list[dict[str, Any]], settings: Any) -> list[float]:
    """P("Yes") of the packaged LLM as a judge (rag.judge), one call per pair."""
    from rag.judge import LlmJudge
    from rag.llm import make_llm

    judge = LlmJudge(make_llm(settings).client)  # type: ignore[attr-defined]
    return [judge.claim(r["question"], r["claim"], r["passage"]) for r in rows]


ADAPTER: Path | None = None


def _adapter() -> dict[str, Path]:
    return {"adapter_dir": ADAPTER} if ADAPTER else {}


def main() -> None:
    """Print each route's figures on the chosen split."""
    global ADAPTER
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    parser.add_argument("--routes", default="names,cosine,support")
    parser.add_argument("--adapter", type=Path, default=None)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument(
        "--save", default="", help="write each route's scores to SAVE-route-split.json"
    )
    args = parser.parse_args()
    ADAPTER = args.adapter
    offline()
    from rag.settings import Settings

    settings = Settings()
    rows = load(args.split)
    print(f"machine: {machine()}; {len(rows)} pairs ({args.split})")
    base = [names_ok(r) for r in rows]
    for route in args.routes.split(","):
        started = time.perf_counter()
        if route == "names":
            verdicts = base
        else:
            scores = route_scores(route, rows, settings)
            default = {"cosine": settings.support_threshold, "support": 0.5, "llm": 0.5}[route]
            floor = args.threshold if args.threshold is not None else default
            verdicts = [b and s >= floor for b, s in zip(base, scores, strict=True)]
            print(f"\n{route} separation:", json.dumps(separation(rows, scores, base)))
            if args.save:
                saved = {r["id"]: sc for r, sc in zip(rows, scores, strict=True)}
                Path(f"{args.save}-{route}-{args.split}.json").write_text(json.dumps(saved))
        cost = (time.perf_counter() - started) / len(rows) * 1000
        print(f"\n{route}: {cost:.1f} ms/pair", json.dumps(metrics(rows, verdicts), indent=1))


if __name__ == "__main__":
    main()
