"""Story groups: syndicated and rewritten copies of one article, found at ingest.

Each article's text is cut into word 3-shingles and summarised by a MinHash signature
(`datasketch`, 128 permutations), stored on its head chunk ("minhash"). After every ingest,
`regroup` puts the signatures in an LSH index, confirms each candidate pair by its estimated
Jaccard similarity (>= `JACCARD`), and joins confirmed pairs into groups (connected components).
Every chunk of an article carries its group's id ("story": the source of the group's earliest
article, by date then path) and size ("story_size"). Groups are recomputed from the articles in
the store, so added, edited and deleted articles always leave them right.

On tests/data/near_duplicates (dev split), same-story pairs have a Jaccard of 0.53-0.97 over
3-shingles and different stories on the same topic at most 0.21: `JACCARD` sits in that gap
(bench/stories.py measures it).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from datasketch import MinHash

    from rag.store import Index

NUM_PERM = 128
SCHEME = "affine32"  # datasketch 2: 32-bit values (stored as such; named, as it asks)
SHINGLE = 3  # words per shingle
JACCARD = 0.4  # estimated Jaccard at or above which two articles are one story
LSH_THRESHOLD = 0.3  # candidates are looked for a little below it (LSH misses some near it)
_WORD = re.compile(r"\w+")


def shingles(text: str) -> set[bytes]:
    """The text's word 3-shingles, lower case (a text shorter than 3 words: its words)."""
    words = _WORD.findall(text.lower())
    n = max(1, len(words) - SHINGLE + 1)
    return {" ".join(words[i : i + SHINGLE]).encode("utf-8") for i in range(n)}


def signature(text: str) -> MinHash:
    """The MinHash signature of the text's shingles."""
    from datasketch import MinHash

    minhash = MinHash(num_perm=NUM_PERM, scheme=SCHEME)
    minhash.update_batch(list(shingles(text)))
    return minhash


def pack(minhash: MinHash) -> str:
    """A signature as text for Chroma metadata (128 uint32 values, base64: 684 characters)."""
    return base64.b64encode(np.asarray(minhash.hashvalues, dtype=np.uint32).tobytes()).decode()


def unpack(text: str) -> MinHash:
    """The inverse of `pack`."""
    from datasketch import MinHash

    values = np.frombuffer(base64.b64decode(text), dtype=np.uint32).copy()
    return MinHash(num_perm=NUM_PERM, hashvalues=values, scheme=SCHEME)


def same_story(a: MinHash, b: MinHash) -> bool:
    """Whether two signatures are of one story (estimated Jaccard >= `JACCARD`)."""
    return float(a.jaccard(b)) >= JACCARD


def group(signatures: dict[str, MinHash]) -> list[list[str]]:
    """The story groups of these articles (source -> signature), singletons included: LSH
    candidates confirmed by `same_story`, joined transitively. Each group sorted by source."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=LSH_THRESHOLD, num_perm=NUM_PERM)
    for source, minhash in signatures.items():
        lsh.insert(source, minhash)
    parent = {source: source for source in signatures}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for source, minhash in signatures.items():
        for other in lsh.query(minhash):
            if other != source and same_story(minhash, signatures[other]):
                parent[root(other)] = root(source)
    members: dict[str, list[str]] = {}
    for source in sorted(signatures):
        members.setdefault(root(source), []).append(source)
    return list(members.values())


@dataclass
class StoryReport:
    """What `regroup` found: groups of more than one article, and how many articles they hold."""

    groups: int = 0
    articles: int = 0
    changed: int = 0  # articles whose group was written this run

    def line(self) -> str:
        """One line for `rag ingest`'s summary."""
        return (
            f"Stories: {self.groups} groups of near-duplicate articles ({self.articles} "
            "articles); citations name the other copies."
        )


def _heads(index: Index) -> Iterable[Mapping[str, Any]]:
    """Every article's head-chunk metadata (with its text), page by page."""
    offset, size = 0, 1000
    while True:
        page = index.collection.get(
            where={"chunk": 0}, include=["metadatas"], limit=size, offset=offset
        )
        yield from page["metadatas"] or []
        if len(page["ids"]) < size:
            return
        offset += size


def regroup(index: Index) -> StoryReport:
    """Recompute the story groups of every article in the index and write the ones that
    changed ("story", "story_size"; "minhash" for articles indexed before signatures were)."""
    signatures: dict[str, MinHash] = {}
    stored: dict[str, tuple[Any, Any]] = {}
    dates: dict[str, str] = {}
    changes: dict[str, dict[str, Any]] = {}
    for meta in _heads(index):
        source = str(meta["source"])
        if meta.get("minhash"):
            signatures[source] = unpack(str(meta["minhash"]))
        else:
            signatures[source] = signature(str(meta.get("article_text", "")))
            changes[source] = {"minhash": pack(signatures[source])}
        stored[source] = (meta.get("story"), meta.get("story_size"))
        dates[source] = str(meta.get("date") or "9999-99-99")
    report = StoryReport()
    for members in group(signatures):
        story = min(members, key=lambda s: (dates[s], s))
        if len(members) > 1:
            report.groups += 1
            report.articles += len(members)
        for source in members:
            if stored[source] != (story, len(members)):
                changes.setdefault(source, {}).update(story=story, story_size=len(members))
    report.changed = len(changes)
    index.update_metadata(changes)
    return report


def copies(index: Index, story: str, where: Any = None) -> list[dict[str, str]]:
    """The articles of a story group (those `where` admits): source, title, outlet, date."""
    clause: Any = {"$and": [{"story": story}, {"chunk": 0}, *([where] if where else [])]}
    page = index.collection.get(where=clause, include=["metadatas"])
    found = [
        {k: str(m.get(k) or "") for k in ("source", "title", "outlet", "date")}
        for m in page["metadatas"] or []
    ]
    return sorted(found, key=lambda c: (c["date"] or "9999", c["source"]))
