"""Main-text, title, outlet and date extraction on the labelled web pages (tests/data/readability).

For each page, `expected.html` (the article as Mozilla Readability extracts it) gives the
article's segments: its sentences of 4 words or more, normalised (NFKC, lower case, punctuation
as spaces). The page's *other* segments are the sentences of `source.html`'s visible text that
are not in the article. An extractor's text then scores:

- recall: the share of article segments found in it (as normalised substrings);
- precision: of the segments found in it, the share that are article segments;
- F1, pooled over all the pages' segments of the split (micro average; the macro mean over
  pages is printed too);
- characters outside the article: the characters of its words that no run of 5 consecutive
  words of the article (or of its title) covers.

Titles are right when they equal the label after normalising, or differ from it only by a
site-name part cut off at a separator (" | ", " - ", " – ", " — ", " :: ", " · ", " » ");
outlets when they equal `siteName` after normalising (pages without one are not counted); dates
when the day is the labelled one (`date`, else `date_from_page`; a stored timestamp counts by the
day it states), and a page without a labelled date must get none.

    .venv/bin/python bench/extract.py [--split dev|test|both] [--rounds 3] [--pages]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "tests" / "data" / "readability"
MIN_WORDS = 4
NGRAM = 5
_SKIP = {"script", "style", "noscript", "template", "head", "svg", "iframe", "title", "select"}
_INLINE = {
    "a", "abbr", "b", "cite", "code", "em", "font", "i", "kbd", "label", "mark", "q", "s",
    "small", "span", "strong", "sub", "sup", "time", "u", "var", "wbr", "big", "del", "ins",
}  # fmt: skip
_SENTENCE = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_SEPARATORS = (" | ", " - ", " – ", " — ", " :: ", " · ", " » ", " : ")


def normalise(text: str) -> str:
    """Lower case, NFKC, every run of non-word characters one space."""
    return " ".join(re.sub(r"[\W_]+", " ", unicodedata.normalize("NFKC", text).lower()).split())


def block_texts(html: str) -> list[str]:
    """The visible text of an HTML document, one string per block element."""
    import lxml.html

    blocks: list[str] = []
    current: list[str] = []

    def cut() -> None:
        text = " ".join("".join(current).split())
        if text:
            blocks.append(text)
        current.clear()

    def walk(element: Any) -> None:
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag in _SKIP or not tag:
            current.append(element.tail or "")
            return
        block = tag not in _INLINE
        if block:
            cut()
        current.append(element.text or "")
        for child in element:
            walk(child)
        if block:
            cut()
        current.append(element.tail or "")

    walk(lxml.html.document_fromstring(html))
    cut()
    return blocks


def segments(blocks: list[str]) -> list[str]:
    """Normalised sentences of at least MIN_WORDS words, each once, in order."""
    found = (normalise(s) for block in blocks for s in _SENTENCE.split(block))
    return list(dict.fromkeys(s for s in found if len(s.split()) >= MIN_WORDS))


def ngrams(words: list[str], n: int = NGRAM) -> set[tuple[str, ...]]:
    """Every run of n consecutive words."""
    return {tuple(words[i : i + n]) for i in range(max(len(words) - n + 1, 0))}


@dataclass
class Truth:
    """What a page's extracted text should and should not contain, and its labels."""

    name: str
    html: str
    expected: list[str]
    other: list[str]
    article_ngrams: set[tuple[str, ...]]
    label: dict[str, Any]


def load_truth(split: str) -> list[Truth]:
    """The labelled pages of a split ("dev" or "test"), sorted by name."""
    manifest = json.loads((PAGES / "manifest.json").read_text())
    out = []
    for label in sorted(manifest["pages"], key=lambda p: p["page"]):
        if label["split"] != split:
            continue
        folder = PAGES / split / label["page"]
        html = (folder / "source.html").read_text(encoding="utf-8", errors="replace")
        article = block_texts((folder / "expected.html").read_text("utf-8", errors="replace"))
        expected = segments(article)
        joined = " ".join(normalise(b) for b in article)
        other = [s for s in segments(block_texts(html)) if s not in joined]
        allowed = ngrams(joined.split()) | ngrams(normalise(label["title"] or "").split())
        out.append(Truth(label["page"], html, expected, other, allowed, label))
    return out


@dataclass
class TextScore:
    """Segment counts and characters of one extracted text."""

    found: int = 0
    expected: int = 0
    boilerplate: int = 0
    other: int = 0
    chars: int = 0
    chars_outside: int = 0

    def add(self, other: TextScore) -> None:
        """Pool another page's counts into this one."""
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def precision(self) -> float:
        """Found article segments over all found segments."""
        hits = self.found + self.boilerplate
        return self.found / hits if hits else 0.0

    @property
    def recall(self) -> float:
        """Found article segments over all article segments."""
        return self.found / self.expected if self.expected else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def outside(self) -> float:
        """Share of the text's characters outside the article."""
        return self.chars_outside / self.chars if self.chars else 0.0


def score_text(text: str, truth: Truth) -> TextScore:
    """How well `text` matches the page's article."""
    flat = normalise(text)
    words = flat.split()
    covered = [False] * len(words)
    for i in range(max(len(words) - NGRAM + 1, 0)):
        if tuple(words[i : i + NGRAM]) in truth.article_ngrams:
            covered[i : i + NGRAM] = [True] * NGRAM
    return TextScore(
        found=sum(s in flat for s in truth.expected),
        expected=len(truth.expected),
        boilerplate=sum(s in flat for s in truth.other),
        other=len(truth.other),
        chars=sum(len(w) for w in words),
        chars_outside=sum(len(w) for w, c in zip(words, covered, strict=True) if not c),
    )


def title_right(title: str, label: str | None) -> bool:
    """Equal after normalising, or equal up to a site-name part cut at a separator."""
    if not label:
        return True
    ours, theirs = normalise(title), normalise(label)
    if ours == theirs:
        return True
    for longer, shorter in ((label, title), (title, label)):
        for sep in _SEPARATORS:
            parts = [normalise(p) for p in longer.split(sep)]
            if len(parts) > 1 and normalise(shorter) in (parts[0], parts[-1], *parts):
                return True
    return False


def outlet_right(outlet: str | None, label: str | None) -> bool | None:
    """None when the page has no labelled outlet."""
    if not label:
        return None
    return normalise(outlet or "") == normalise(label)


def _day(value: object) -> str | None:
    """A stored date as its day: today's parser stores the <meta> value as written."""
    from rag.pagedate import as_day

    return as_day(value)


def labelled_date(label: dict[str, Any]) -> str | None:
    """The page's publication day, or None for an undated page."""
    return label.get("date") or label.get("date_from_page")


@dataclass
class Report:
    """One extractor's figures on one split."""

    name: str
    split: str
    text: TextScore = field(default_factory=TextScore)
    page_f1: list[float] = field(default_factory=list)
    seconds: float = 0.0
    pages: int = 0
    titles: list[bool] = field(default_factory=list)
    outlets: list[bool] = field(default_factory=list)
    dated: list[bool] = field(default_factory=list)
    invented: list[bool] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)
    extractors: dict[str, int] = field(default_factory=dict)

    def figures(self) -> dict[str, float]:
        """The headline figures."""

        def rate(values: list[bool]) -> float:
            return sum(values) / len(values) if values else float("nan")

        return {
            "f1": self.text.f1,
            "precision": self.text.precision,
            "recall": self.text.recall,
            "macro_f1": sum(self.page_f1) / len(self.page_f1) if self.page_f1 else 0.0,
            "outside": self.text.outside,
            "title": rate(self.titles),
            "outlet": rate(self.outlets),
            "date": rate(self.dated),
            "invented": float(sum(self.invented)),
            "undated": float(len(self.invented)),
            "pages_per_s": self.pages / self.seconds if self.seconds else float("nan"),
        }


Extractor = Callable[[str], tuple[str, str, dict[str, Any]]]  # html -> (title, text, metadata)


def evaluate(name: str, extractor: Extractor, truths: list[Truth], split: str) -> Report:
    """Run `extractor` on every page and score it."""
    report = Report(name, split)
    for truth in truths:
        started = time.perf_counter()
        title, text, meta = extractor(truth.html)
        report.seconds += time.perf_counter() - started
        report.pages += 1
        score = score_text(text, truth)
        report.text.add(score)
        report.page_f1.append(score.f1)
        report.titles.append(title_right(title, truth.label["title"]))
        outlet = outlet_right(meta.get("outlet"), truth.label["siteName"])
        if outlet is not None:
            report.outlets.append(outlet)
        want, got = labelled_date(truth.label), _day(meta.get("date"))
        (report.dated if want else report.invented).append(got == want if want else bool(got))
        extractor_name = str(meta.get("extractor", name))
        report.extractors[extractor_name] = report.extractors.get(extractor_name, 0) + 1
        report.rows.append(
            f"{truth.name:<28} P {score.precision:.3f} R {score.recall:.3f} "
            f"out {score.outside:.3f} date {got}/{want} [{extractor_name}] title {title!r}"
        )
    return report


def ours(html: str) -> tuple[str, str, dict[str, Any]]:
    """The new HTML ingest: `rag.extract.extract_page`."""
    from rag.extract import extract_page

    page = extract_page(html)
    return page.title, page.text, page.metadata


def todays(html: str) -> tuple[str, str, dict[str, Any]]:
    """The HTML ingest before this benchmark: BeautifulSoup's text of the body, <meta> tags."""
    from rag.extract import parse_with_soup

    return parse_with_soup(html)


def format_report(r: Report) -> str:
    """Two lines of figures."""
    f = r.figures()
    return (
        f"{r.name:<8} {r.split:<4} F1 {f['f1']:.3f} (P {f['precision']:.3f}, R {f['recall']:.3f}; "
        f"macro {f['macro_f1']:.3f})  outside {f['outside']:.1%}  title {f['title']:.1%}  "
        f"outlet {f['outlet']:.1%} ({len(r.outlets)})  date {f['date']:.1%} ({len(r.dated)}), "
        f"invented {int(f['invented'])}/{int(f['undated'])}  {f['pages_per_s']:.1f} pages/s"
        f"\n         extractors: {r.extractors}"
    )


def main() -> None:
    """Print both extractors' figures on the chosen splits."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["dev", "test", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (best is kept)")
    parser.add_argument("--pages", action="store_true", help="print a line per page")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from _common import cpu_load, machine

    print(f"# {machine()}; load {cpu_load()}")
    for split in ["dev", "test"] if args.split == "both" else [args.split]:
        truths = load_truth(split)
        best: dict[str, Report] = {}
        for _ in range(args.rounds):  # the two sides alternate, so both see the same load
            for name, extractor in (("today", todays), ("ours", ours)):
                run = evaluate(name, extractor, truths, split)
                if name not in best or run.seconds < best[name].seconds:
                    best[name] = run
        for report in best.values():
            if args.pages:
                print("\n".join(report.rows))
            print(format_report(report))
        speed = best["ours"].figures()["pages_per_s"] / best["today"].figures()["pages_per_s"]
        print(f"         pages/s ours / today: {speed:.2f}")
    print(f"# load at the end {cpu_load()}")


if __name__ == "__main__":
    main()
