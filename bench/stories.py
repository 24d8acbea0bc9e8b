"""Near-duplicate story groups (rag.stories): precision and recall on the labelled pairs, and
the groups of a corpus.

    .venv/bin/python bench/stories.py [--pairs tests/data/near_duplicates]
                                      [--corpus ../shared/corpora/bbc]

Each labelled pair is grouped as `rag ingest` groups articles (MinHash signatures of word
3-shingles, LSH candidates, estimated Jaccard >= rag.stories.JACCARD); a pair counts as found
when its two texts land in one group. The corpus part reads every article as `rag ingest` does
and reports its exact duplicates (same text) and its near-duplicate groups, with a few examples.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.loading import load_article, scan_corpus  # noqa: E402
from rag.stories import group, signature  # noqa: E402


def score(pairs_dir: Path) -> dict[str, dict[str, float]]:
    """Precision and recall per split (dev, test, all), and the kinds of the mistakes."""
    pairs = json.loads((pairs_dir / "pairs.json").read_text())
    counts: dict[str, Counter[str]] = {s: Counter() for s in ("dev", "test", "all")}
    wrong: list[str] = []
    for pair in pairs:
        a = signature((pairs_dir / f"{pair['pair']}_a.txt").read_text())
        b = signature((pairs_dir / f"{pair['pair']}_b.txt").read_text())
        found = len(group({"a": a, "b": b})) == 1
        cell = {(True, True): "tp", (False, True): "fp", (True, False): "fn"}.get(
            (pair["duplicate"], found), "tn"
        )
        for split in (pair["split"], "all"):
            counts[split][cell] += 1
        if cell in ("fp", "fn"):
            wrong.append(f"{pair['pair']} ({pair['kind']}, {cell}, J={a.jaccard(b):.2f})")
    out = {}
    for split, c in counts.items():
        out[split] = {
            "pairs": sum(c.values()),
            "precision": c["tp"] / max(1, c["tp"] + c["fp"]),
            "recall": c["tp"] / max(1, c["tp"] + c["fn"]),
        }
    print("mistakes:", ", ".join(wrong) or "none")
    return out


def corpus_groups(corpus: Path) -> None:
    """Exact duplicates and near-duplicate groups of a corpus, as `rag ingest` reads it."""
    files, _ = scan_corpus(corpus)
    started = time.perf_counter()
    texts = {}
    for path in files:
        article = load_article(path, corpus)
        texts[article.source] = article.text
    exact = Counter(hashlib.sha256(t.encode()).hexdigest() for t in texts.values())
    signatures = {s: signature(t) for s, t in texts.items()}
    signed = time.perf_counter() - started
    groups = [g for g in group(signatures) if len(g) > 1]
    seconds = time.perf_counter() - started
    identical = sum(1 for g in groups if len({texts[s] for s in g}) == 1)
    print(
        f"{corpus}: {len(texts)} articles; {sum(n - 1 for n in exact.values() if n > 1)} exact "
        f"duplicate files; {len(groups)} near-duplicate groups ({sum(map(len, groups))} "
        f"articles; {identical} of them groups of identical texts), sizes "
        f"{dict(Counter(len(g) for g in groups))}; read+sign {signed:.1f}s, all {seconds:.1f}s"
    )
    for g in [g for g in groups if len({texts[s] for s in g}) > 1][:8]:
        a, b = signatures[g[0]], signatures[g[1]]
        print(f"  {', '.join(g)}  (J={a.jaccard(b):.2f})")


def main() -> None:
    """Print the pair figures and the corpus's groups."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=ROOT / "tests/data/near_duplicates")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/corpora/bbc")
    args = parser.parse_args()
    for split, figures in score(args.pairs).items():
        print(
            f"{split:>4}: {figures['pairs']:.0f} pairs, precision {figures['precision']:.3f}, "
            f"recall {figures['recall']:.3f}"
        )
    if args.corpus.exists():
        corpus_groups(args.corpus)


if __name__ == "__main__":
    main()
