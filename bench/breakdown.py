"""The figures of issue 17's targets from a `rag eval --out` results file: answerable questions
(key fact, expected article cited, refused), near misses refused (per kind), follow-ups right.

    .venv/bin/python bench/breakdown.py eval/test.jsonl data/eval/results.json [more.json ...]

With several results files (runs of different versions on the same set), one column each.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def kinds(cases_file: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Each question id's kind ("answerable", "near-miss:<kind>", "unanswerable", "follow-up")
    and its expected articles."""
    kind: dict[str, str] = {}
    sources: dict[str, list[str]] = {}
    for line in cases_file.read_text().splitlines():
        case = json.loads(line)
        if "turns" in case:
            for i, turn in enumerate(case["turns"], start=1):
                kind[f"{case['id']}.{i}"] = "follow-up" if i > 1 else "answerable"
                sources[f"{case['id']}.{i}"] = turn.get("sources", [])
        elif case.get("unanswerable"):
            kind[case["id"]] = f"near-miss:{case['kind']}" if case.get("kind") else "unanswerable"
        else:
            kind[case["id"]] = "answerable"
            sources[case["id"]] = case.get("sources", [])
    return kind, sources


def breakdown(cases_file: Path, results_file: Path) -> dict[str, Any]:
    """The target figures of one run."""
    kind, sources = kinds(cases_file)
    rows = json.loads(results_file.read_text())["cases"]
    answerable = [r for r in rows if kind.get(r["id"]) == "answerable"]
    follow = [r for r in rows if kind.get(r["id"]) == "follow-up"]
    near = [r for r in rows if kind.get(r["id"], "").startswith("near-miss")]

    def ratio(hits: int, total: int) -> str:
        return f"{hits}/{total} ({hits / total:.3f})" if total else "-"

    per_kind: dict[str, list[int]] = {}
    for r in near:
        tally = per_kind.setdefault(kind[r["id"]].split(":")[1], [0, 0])
        tally[0] += r["refused"]
        tally[1] += 1
    return {
        "key fact in the answer": ratio(
            sum(bool(r["facts_ok"]) for r in answerable), len(answerable)
        ),
        "expected article cited": ratio(
            sum(any(c in sources[r["id"]] for c in r["cited"]) for r in answerable), len(answerable)
        ),
        "answerable refused": ratio(sum(r["refused"] for r in answerable), len(answerable)),
        "near misses refused": ratio(sum(r["refused"] for r in near), len(near)),
        **{f"  {k}": ratio(*v) for k, v in sorted(per_kind.items())},
        "follow-ups right": ratio(
            sum(bool(r["facts_ok"]) and not r["refused"] for r in follow), len(follow)
        ),
        "unsupported names/numbers": sum(len(r["unsupported_facts"]) for r in rows),
    }


def main() -> None:
    """Print one column per results file."""
    cases, *runs = (Path(a) for a in sys.argv[1:])
    columns = [breakdown(cases, run) for run in runs]
    print("| | " + " | ".join(r.name for r in runs) + " |")
    print("|---" * (len(runs) + 1) + "|")
    for key in columns[0]:
        print(f"| {key} | " + " | ".join(str(c[key]) for c in columns) + " |")


if __name__ == "__main__":
    main()
