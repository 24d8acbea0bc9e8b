"""What is indexed: one summary per article (`rag articles`, `GET /api/articles`) and one
article with its extracted text (`GET /api/articles/{id}`).

An article's id is its source: the path relative to the corpus, as in citations (URL-encode it
in a URL: `/api/articles/web%2Fnews.example%2Fstory.html`).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from rag.store import Index

FIELDS = ("title", "date", "outlet", "author", "url", "lang")


def summary(meta: dict[str, Any]) -> dict[str, Any]:
    """The listing fields of one article, from its head-chunk metadata."""
    suffix = PurePosixPath(str(meta["source"])).suffix.lower().lstrip(".")
    out: dict[str, Any] = {"id": str(meta["source"]), "source": str(meta["source"])}
    out.update({k: (str(meta[k]) if meta.get(k) else None) for k in FIELDS})
    out["chars"] = int(meta["n_chars"]) if "n_chars" in meta else None
    out["chunks"] = int(meta.get("n_chunks", 0))
    # Web pages name the extractor that produced their text; other files their format.
    out["extractor"] = str(meta.get("extractor") or {"htm": "html"}.get(suffix, suffix))
    return out


def list_articles(index: Index) -> list[dict[str, Any]]:
    """Every indexed article's summary, sorted by source."""
    return [summary(meta) for _, meta in sorted(index.article_states().items())]


def get_article(index: Index, source: str) -> dict[str, Any] | None:
    """One article's summary plus its extracted text ("text"), or None."""
    record = index.article_record(source)
    if record is None:
        return None
    text = str(record.pop("article_text", ""))
    return {**summary({**record, "n_chars": record.get("n_chars", len(text))}), "text": text}


def format_table(articles: list[dict[str, Any]]) -> str:
    """The listing for the terminal: one line per article."""
    lines = []
    for a in articles:
        chars = f"{a['chars']:,} chars" if a["chars"] is not None else "? chars"
        where = " ".join(x for x in (a["outlet"], a["url"]) if x)
        lines.append(
            f"{a['date'] or 'undated':<10}  {a['title']}\n"
            f"            {a['source']}  [{a['extractor']}, {chars}]{'  ' + where if where else ''}"
        )
    lines.append(f"{len(articles)} articles.")
    return "\n".join(lines)
