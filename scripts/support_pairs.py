"""Training pairs for the claim check, made from a corpus itself: (claim, passage, label, kind).

Supported claims are a passage's own sentence, a clause of it, the sentence without its
attribution, or with numbers and units written another way. Unsupported ones are the hard
negatives a small model produces: another number, name or year *from the same passage* put in,
two names swapped (roles), a negation or reversal, an estimate or plan stated as the result, a
true clause joined to an invented one, a sentence from another article on the same topic. The
label comes from how the pair was made.

    python scripts/support_pairs.py ../shared/corpora/bbc --exclude eval/test.jsonl \
        --exclude-claims tests/data/claims/pairs.jsonl --out data/support/pairs.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

from rag.chunking import split_sentences

NUMBER = re.compile(r"(?<![\w.])[£$€]?\d[\d,]*(?:\.\d+)?(?:\s?(?:bn|m|k|%|per cent|pc))?(?![\w])")
YEAR = re.compile(r"\b(?:19[5-9]\d|20[0-2]\d)\b")
NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:\s+(?:of\s+|de\s+|the\s+)?[A-Z][a-z]+)*\b")
ATTRIBUTION = re.compile(
    r",?\s*(?:he|she|they|it|the [a-z]+|[A-Z][a-z]+(?: [A-Z][a-z]+)*) "
    r"(?:said|says|added|told [A-Za-z ]+|explained|argued)\s*\.?$"
)
MODAL = re.compile(
    r"\b(?:could|may|might|would|is expected to|are expected to|was expected to|"
    r"plans to|planned to|aims to|hopes to|wants to|is set to|are set to|is likely to|"
    r"threatened to|promised to|proposed to|intends to)\s+(\w+)",
    re.I,
)
APPROX = re.compile(r"\b(?:up to|as much as|as many as|about|around|nearly|almost|more than|"
                    r"less than|over|some|an estimated|roughly)\s+(?=[£$€]?\d)", re.I)  # fmt: skip
REVERSALS = {
    "rose": "fell", "fell": "rose", "increased": "decreased", "decreased": "increased",
    "higher": "lower", "lower": "higher", "won": "lost", "lost": "won", "gained": "lost",
    "accepted": "rejected", "rejected": "accepted", "approved": "rejected", "up": "down",
    "down": "up", "rising": "falling", "falling": "rising", "beat": "lost to", "more": "fewer",
    "profit": "loss", "profits": "losses", "boost": "cut", "cut": "raised", "before": "after",
    "after": "before", "agreed": "refused", "refused": "agreed", "supports": "opposes",
    "backed": "opposed", "opposed": "backed", "best": "worst", "record": "lowest",
}  # fmt: skip
AUX_NOT = re.compile(r"\b(is|was|are|were|has|have|had|will|would|can|could|should|did|does)\b")
IRREGULAR = {
    "be": "was", "have": "had", "make": "made", "take": "took", "go": "went", "sell": "sold",
    "buy": "bought", "cut": "cut", "rise": "rose", "fall": "fell", "win": "won", "lose": "lost",
    "pay": "paid", "raise": "raised", "get": "got", "give": "gave", "bring": "brought",
    "leave": "left", "meet": "met", "hit": "hit", "put": "put", "set": "set", "spend": "spent",
    "become": "became", "build": "built", "run": "ran", "keep": "kept", "hold": "held",
    "lead": "led", "send": "sent", "see": "saw", "face": "faced", "fetch": "fetched",
}  # fmt: skip
WORDS = {
    "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
    "8": "eight", "9": "nine", "10": "ten", "12": "twelve", "20": "twenty", "50": "fifty",
}  # fmt: skip
UNITS = [(r"£(\d[\d.,]*)bn", r"\1 billion pounds"), (r"\$(\d[\d.,]*)bn", r"\1 billion dollars"),
         (r"£(\d[\d.,]*)m\b", r"\1 million pounds"), (r"\$(\d[\d.,]*)m\b", r"\1 million dollars"),
         (r"(\d[\d.]*)%", r"\1 per cent"), (r"(\d[\d.]*) per cent", r"\1%")]  # fmt: skip


def past(verb: str) -> str:
    """A crude past tense, for turning a plan into a result."""
    v = verb.lower()
    if v in IRREGULAR:
        return IRREGULAR[v]
    if v.endswith("e"):
        return v + "d"
    if v.endswith("y") and len(v) > 2 and v[-2] not in "aeiou":
        return v[:-1] + "ied"
    return v + "ed"


def names(text: str) -> list[str]:
    """Capitalised names in `text` (not a sentence's first word), without repeats."""
    found = [m.group() for m in NAME.finditer(text)]
    return list(dict.fromkeys(n for n in found if n not in {"The", "But", "He", "She", "It"}))


def _swap(text: str, a: str, b: str) -> str:
    return text.replace(a, "\0").replace(b, a).replace("\0", b)


PRONOUN_START = re.compile(r"^(He|She|It|They|The firm|The company|The group)\b")
CONNECTOR = re.compile(r"^(?:But|However|And|Meanwhile|Also|So|Yet|Now),?\s+")
ASIDE = re.compile(r"\s*\([^()]*\)|\s+-\s+[^-]{3,80}\s+-(?=\s)")


def compressed(sentence: str) -> str:
    """The sentence without its opening connector, asides in brackets or between dashes."""
    text = ASIDE.sub("", CONNECTOR.sub("", sentence))
    text = " ".join(text.split())
    return text[:1].upper() + text[1:]


def supported(sentence: str, before: str, rng: random.Random) -> Iterator[tuple[str, str]]:
    """Claims the sentence supports (with the sentence `before` it in the passage, or ""):
    itself, shorter forms, its main clause, without attribution, other units, a pronoun
    resolved from the sentence before."""
    yield sentence, "verbatim"
    short = compressed(sentence)
    if short != sentence and len(short.split()) >= 6:
        yield short, "compressed"
    m = PRONOUN_START.match(sentence)
    who = names(before)
    if m and who:
        yield who[0] + sentence[m.end() :], "coref"
    bare = ATTRIBUTION.sub(".", sentence).strip()
    if bare != sentence and len(bare.split()) >= 6:
        yield bare, "no-attribution"
    parts = re.split(r",\s+(?:and|but|while|which|who)\s+|;\s+", sentence)
    if len(parts) > 1 and len(parts[0].split()) >= 6:
        yield parts[0].rstrip(",") + ".", "clause"
    for pattern, repl in UNITS:
        if re.search(pattern, sentence):
            yield re.sub(pattern, repl, sentence, count=1), "unit-forms"
            break
    small = [n for n in re.findall(r"\b\d{1,2}\b", sentence) if n in WORDS]
    if small and not YEAR.search(sentence):
        n = rng.choice(small)
        yield re.sub(rf"\b{n}\b", WORDS[n], sentence, count=1), "numbers-in-words"


def unsupported(
    sentence: str, passage: str, other: str, rng: random.Random
) -> Iterator[tuple[str, str]]:
    """Hard negatives for `sentence` (within `passage`); `other` is a same-topic sentence of
    another article."""
    numbers = list(dict.fromkeys(m.group() for m in NUMBER.finditer(passage)))
    mine = [m.group() for m in NUMBER.finditer(sentence)]
    if mine and len(numbers) > 1:
        a = rng.choice(mine)
        b = rng.choice([n for n in numbers if n != a])
        yield sentence.replace(a, b, 1), "swapped-number"
    years = list(dict.fromkeys(YEAR.findall(passage)))
    if YEAR.search(sentence):
        y = YEAR.search(sentence).group()  # type: ignore[union-attr]
        alt = [x for x in years if x != y] or [str(int(y) + rng.choice([-1, 1]))]
        yield sentence.replace(y, rng.choice(alt), 1), "wrong-time"
    here = names(sentence)
    pool = names(passage)
    if len(here) >= 2:
        a, b = rng.sample(here, 2)
        if a not in b and b not in a:
            yield _swap(sentence, a, b), "wrong-role"
    if here and len(pool) > len(here):
        a = rng.choice(here)
        b = rng.choice([n for n in pool if n not in here])
        yield sentence.replace(a, b, 1), "swapped-name"
    words = sentence.split()
    flips = [i for i, w in enumerate(words) if w.lower().strip(",.") in REVERSALS]
    if flips:
        i = rng.choice(flips)
        core = words[i].strip(",.")
        words[i] = words[i].replace(core, REVERSALS[core.lower()])
        yield " ".join(words), "negation"
    elif AUX_NOT.search(sentence):
        yield AUX_NOT.sub(r"\1 not", sentence, count=1), "negation"
    m = MODAL.search(sentence)
    if m:
        yield sentence[: m.start()] + past(m.group(1)) + sentence[m.end() :], "estimate-as-final"
    elif APPROX.search(sentence):
        yield APPROX.sub("", sentence, count=1), "estimate-as-final"
    tail = re.split(r",\s+", other.rstrip("."))[-1]
    if len(tail.split()) >= 4:
        yield sentence.rstrip(".") + ", and " + tail[0].lower() + tail[1:] + ".", "partial-invented"
    yield other, "invented"


def article_sentences(path: Path) -> list[str]:
    """The article's sentences (title line left out), of 8 to 60 words."""
    text = path.read_text(encoding="utf-8", errors="replace")
    body = text.split("\n", 1)[1] if "\n" in text else text
    spans = split_sentences(body)
    return [" ".join(body[a:b].split()) for a, b in spans if 8 <= len(body[a:b].split()) <= 60]


def excluded_sources(tests: list[Path], claims: list[Path]) -> set[str]:
    """Articles held out of training: those of the frozen test sets and the claim pair set."""
    out: set[str] = set()
    for path in tests:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            for turn in row.get("turns", [row]):
                out.update(turn.get("sources", []))
                out.update(turn.get("near", []))
    for path in claims:
        out.update(json.loads(line)["source"] for line in path.read_text().splitlines())
    return {s.removeprefix("bbc/") for s in out}


def make_pairs(corpus: Path, skip: set[str], per_article: int, seed: int) -> list[dict[str, str]]:
    """Balanced supported / unsupported pairs from every article not in `skip`."""
    rng = random.Random(seed)
    files = sorted(p for p in corpus.rglob("*.txt") if p.relative_to(corpus).as_posix() not in skip)
    files = [p for p in files if p.name != "README.TXT"]
    by_topic: dict[str, list[list[str]]] = {}
    articles = [(p, article_sentences(p)) for p in files]
    for p, sents in articles:
        by_topic.setdefault(p.parent.name, []).append(sents)
    pairs: list[dict[str, str]] = []
    for path, sents in articles:
        if len(sents) < 3:
            continue
        for i in rng.sample(range(len(sents)), min(per_article, len(sents))):
            j = i + rng.choice([-1, 1]) if 0 < i < len(sents) - 1 else (1 if i == 0 else i - 1)
            passage = " ".join(sorted([sents[i], sents[j]], key=sents.index))
            if rng.random() < 0.4:
                passage = sents[i]
            other = rng.choice(rng.choice(by_topic[path.parent.name]) or [sents[j]])
            before = sents[i - 1] if passage.startswith(sents[i - 1]) and i > 0 else ""
            pos = list(supported(sents[i], before, rng))
            base = rng.choice(pos)[0]  # negatives made from any form, so form tells nothing
            neg = [c for c in unsupported(base, passage, other, rng) if c[0] != base]
            source = path.relative_to(corpus).as_posix()
            for claim, kind in pos:
                pairs.append(_pair(source, passage, claim, "supported", kind))
            for claim, kind in neg:
                pairs.append(_pair(source, passage, claim, "unsupported", kind))
    return _balanced(pairs, rng)


def _balanced(
    pairs: list[dict[str, str]], rng: random.Random, cap: int = 1500
) -> list[dict[str, str]]:
    """At most `cap` pairs of a kind, and as many supported as unsupported."""
    rng.shuffle(pairs)
    seen: dict[str, int] = {}
    kept = []
    for p in pairs:
        key = f"{p['label']}/{p['kind']}"
        if seen.get(key, 0) < cap:
            seen[key] = seen.get(key, 0) + 1
            kept.append(p)
    pos = [p for p in kept if p["label"] == "supported"]
    neg = [p for p in kept if p["label"] == "unsupported"]
    n = min(len(pos), len(neg))
    out = pos[:n] + neg[:n]
    rng.shuffle(out)
    return out


def _pair(source: str, passage: str, claim: str, label: str, kind: str) -> dict[str, str]:
    return {"source": source, "passage": passage, "claim": claim, "label": label, "kind": kind}


def main() -> None:
    """Write the pairs as JSONL."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--exclude", type=Path, action="append", default=[])
    parser.add_argument("--exclude-claims", type=Path, action="append", default=[])
    parser.add_argument("--per-article", type=int, default=3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    skip = excluded_sources(args.exclude, args.exclude_claims)
    pairs = make_pairs(args.corpus, skip, args.per_article, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    kinds: dict[str, int] = {}
    for p in pairs:
        kinds[f"{p['label']}/{p['kind']}"] = kinds.get(f"{p['label']}/{p['kind']}", 0) + 1
    print(f"{len(pairs)} pairs from {args.corpus} ({len(skip)} articles held out): {kinds}")


if __name__ == "__main__":
    main()
