"""Stage 1, web pages: an HTML page's own article (not its menus, footers, comments or related
links), its title without the site's suffix, and its metadata (date, outlet, author, URL,
language).

The main text comes from trafilatura; when it finds too little, readability-lxml, then the
plain BeautifulSoup text of the whole body (today's parser before this module), and
`Page.extractor` says which one ran.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rag.pagedate import ARTICLE_TYPES, publication_date

TRAFILATURA, READABILITY, SOUP = "trafilatura", "readability", "html-parser"
MIN_TEXT_CHARS = 250  # less than this from an extractor: try the next one
RELATED_RATIO = 3.0
_MAX_META = 500
_TITLE_SEPARATORS = re.compile(r"\s+(?:\||-|–|—|::|·|»|:)\s+")
_SPACE = re.compile(r"[ \t\xa0]+")
_CDATA = re.compile(r"^\s*(?://\s*)?<!\[CDATA\[|(?://\s*)?\]\]>\s*$")


@dataclass(frozen=True)
class Page:
    """What a web page holds: title, article text and metadata (all strings, filterable)."""

    title: str
    text: str
    metadata: dict[str, str]

    @property
    def extractor(self) -> str:
        """Which extractor produced the text."""
        return self.metadata["extractor"]


def extract_page(html: str, url: str | None = None) -> Page:
    """The page's article, title and metadata. `url` is where it was fetched from, if known."""
    import lxml.html

    tree = lxml.html.document_fromstring(html) if html.strip() else None
    if tree is None:
        return Page("", "", {"extractor": SOUP})
    objects = json_ld(tree)
    metas = meta_tags(tree)
    text, extractor = main_text(html)
    outlet = _outlet(objects, metas) or (_host(url) if url else "")
    title = page_title(tree, objects, metas, outlet)
    lang = _language(tree, metas)
    address = _url(url, tree, metas)  # the fetched URL, else the page's canonical one
    meta = {
        "extractor": extractor,
        "date": publication_date(tree, objects, address or None, lang) or "",
        "outlet": outlet,
        "author": _author(objects, metas),
        "url": address,
        "lang": lang.split("-")[0],
    }
    if title and not text.startswith(title):
        text = f"{title}\n\n{text}"
    return Page(title, text, {k: v[:_MAX_META] for k, v in meta.items() if v})


SIDECAR = ".json"  # page.html's sidecar is page.html.json (`rag.fetch` writes it)


def sidecar_path(page: Path) -> Path:
    """Where a fetched page's sidecar (URL, fetch time, ETag, Last-Modified) lives."""
    return page.with_name(page.name + SIDECAR)


def read_sidecar(page: Path) -> dict[str, Any]:
    """The sidecar's fields, or {} when the page was not fetched (or the sidecar is broken)."""
    try:
        data = json.loads(sidecar_path(page).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def parse_page(html: str, path: Path | None = None) -> tuple[str, str, dict[str, str]]:
    """(title, text, metadata) of a saved page for the loader; a fetched page's URL comes
    from its sidecar."""
    sidecar = read_sidecar(path) if path is not None else {}
    url = sidecar.get("url")
    page = extract_page(html, url if isinstance(url, str) else None)
    return page.title, page.text, page.metadata


def main_text(html: str) -> tuple[str, str]:
    """(article text, extractor name): trafilatura, else readability-lxml, else the body.

    Readability also wins when trafilatura's text is over RELATED_RATIO times as long as
    its: trafilatura then has taken in a gallery or a list of related stories.
    """
    import trafilatura

    html = _without_hidden(html)
    try:
        found = trafilatura.extract(
            html, include_comments=False, include_tables=True, favor_recall=True
        )
    except Exception:  # a failing extractor on a hostile page: the next one tries
        found = None
    text = _tidy(found or "")
    readable = _readability(html)
    related = len(readable) >= MIN_TEXT_CHARS and len(text) > RELATED_RATIO * len(readable)
    if len(text) >= MIN_TEXT_CHARS and not related:
        return text, TRAFILATURA
    if len(readable) >= MIN_TEXT_CHARS or (readable and not text):
        return readable, READABILITY
    if text:  # a short article
        return text, TRAFILATURA
    return parse_with_soup(html)[1], SOUP


def _without_hidden(html: str) -> str:
    """The page without what a reader never sees as text: <noscript> (shown only without
    JavaScript, often a tracking notice), <template>. Extractors keep their words otherwise."""
    import lxml.html

    try:
        root = lxml.html.document_fromstring(html)
    except Exception:  # not parseable: the extractors get it as it is
        return html
    for element in root.xpath("//noscript|//template"):
        element.drop_tree()
    return str(lxml.html.tostring(root, encoding="unicode"))


def _readability(html: str) -> str:
    import lxml.html
    from readability import Document

    try:
        summary = Document(html).summary(html_partial=True)
        root = lxml.html.fragment_fromstring(summary, create_parent="div")
    except Exception:
        return ""
    for br in root.iter("br"):
        br.tail = "\n" + (br.tail or "")
    blocks = root.xpath(".//p|.//li|.//h1|.//h2|.//h3|.//h4|.//h5|.//h6|.//pre|.//td|.//th")
    lines = [el.text_content() for el in blocks] if blocks else [root.text_content()]
    return _tidy("\n".join(lines))


def _tidy(text: str) -> str:
    lines = (_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


# ---- metadata -----------------------------------------------------------------------------


def json_ld(tree: Any) -> list[dict[str, Any]]:
    """Every JSON-LD object of the page (lists and @graph flattened), page order."""
    out: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            out.append(value)
            walk(value.get("@graph"))

    for script in tree.xpath('//script[@type="application/ld+json"]'):
        body = _CDATA.sub("", script.text_content() or "")
        try:
            walk(json.loads(body or "null", strict=False))
        except ValueError:
            continue
    return out


def meta_tags(tree: Any) -> dict[str, str]:
    """<meta> name/property -> content, lower-case keys, the first of each."""
    found: dict[str, str] = {}
    for meta in tree.iter("meta"):
        key = str(meta.get("property") or meta.get("name") or "").strip().lower()
        content = " ".join(str(meta.get("content") or "").split())
        if key and content and key not in found:
            found[key] = content
    return found


def _names(value: Any) -> list[str]:
    """The names in a JSON-LD person/organisation value (a string, a dict, or a list)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return _names(value.get("name"))
    if isinstance(value, list):
        return [name for item in value for name in _names(item)]
    return []


def _articles_first(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(objects, key=lambda o: not ARTICLE_TYPES.search(str(o.get("@type", ""))))


def _outlet(objects: list[dict[str, Any]], metas: dict[str, str]) -> str:
    for obj in _articles_first(objects):
        if names := _names(obj.get("publisher")):
            return " ".join(names[0].split())
    return metas.get("og:site_name") or metas.get("application-name") or ""


def _author(objects: list[dict[str, Any]], metas: dict[str, str]) -> str:
    for obj in _articles_first(objects):
        if names := [" ".join(n.split()) for n in _names(obj.get("author")) if n.strip()]:
            return ", ".join(dict.fromkeys(names))
    return metas.get("author") or metas.get("article:author") or metas.get("parsely-author") or ""


def _url(fetched: str | None, tree: Any, metas: dict[str, str]) -> str:
    """Where the page was fetched from, else its canonical URL (http or https only)."""
    canonical = next(iter(tree.xpath('//link[@rel="canonical"]/@href')), "")
    for candidate in (fetched, canonical, metas.get("og:url")):
        value = str(candidate or "").strip()
        if urlsplit(value).scheme in ("http", "https") and urlsplit(value).netloc:
            return value
    return ""


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").removeprefix("www.")


def _language(tree: Any, metas: dict[str, str]) -> str:
    lang = tree.get("lang") or metas.get("content-language") or metas.get("og:locale") or ""
    return str(lang).strip().lower().replace("_", "-")


def page_title(
    tree: Any, objects: list[dict[str, Any]], metas: dict[str, str], outlet: str = ""
) -> str:
    """The JSON-LD headline, else og:title, else <title> without the site-name part ("Story |
    Site"), else the first <h1>."""
    h1 = next((el.text_content() for el in tree.iter("h1") if el.text_content().strip()), "")
    head = next((el.text_content() for el in tree.iter("title")), "")
    candidates = (_headline(objects, head), metas.get("og:title"), metas.get("twitter:title"))
    for candidate in (*candidates, strip_site_name(_clean(head), outlet, h1), h1):
        if title := _clean(candidate):
            return title[:300]
    return ""


def _clean(text: str | None) -> str:
    return " ".join(str(text or "").split())


def _headline(objects: list[dict[str, Any]], head: str) -> str:
    """An article's JSON-LD headline or name; of two that differ, the one nearer <title>."""
    for obj in _articles_first(objects):
        if not ARTICLE_TYPES.search(str(obj.get("@type", ""))):
            break
        found = [_clean(obj.get(k)) for k in ("headline", "name") if isinstance(obj.get(k), str)]
        found = [f for f in found if f]
        if found:
            words = set(_key(head).split())
            return max(
                found, key=lambda f: len(words & set(_key(f).split())) / (len(f.split()) or 1)
            )
    return ""


def strip_site_name(title: str, outlet: str = "", h1: str = "") -> str:
    """ "Story | Site" -> "Story": a part that is the outlet's name, or that is not the page's
    <h1> while another part is, is cut off."""
    parts = _TITLE_SEPARATORS.split(title)
    if len(parts) < 2:
        return title
    key = _key(outlet)
    kept = [p for p in parts if not key or _key(p) != key]
    heading = _key(h1)
    if heading and any(_key(p) == heading for p in kept):
        kept = [p for p in kept if _key(p) == heading]
    return " - ".join(kept) if kept and len(kept) < len(parts) else title


def _key(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", text.lower()).split())


# ---- the plain parser (before trafilatura; the last fallback) -----------------------------


def parse_with_soup(html: str) -> tuple[str, str, dict[str, str]]:
    """(title, text, metadata) the simple way: all of the body's text, <title>, <meta> tags."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "iframe", "svg", "nav"]):
        tag.decompose()
    meta: dict[str, str] = {}
    names = {"og:site_name": "outlet", "article:published_time": "date"}
    for tag in soup.find_all("meta"):
        key = str(tag.get("name") or tag.get("property") or "").lower()
        key = names.get(key, key.removeprefix("og:"))
        if key in ("date", "outlet", "url", "author") and tag.get("content"):
            meta[key] = " ".join(str(tag["content"]).split())[:_MAX_META]
    canonical = soup.find("link", rel="canonical")
    if canonical and canonical.get("href"):
        meta.setdefault("url", str(canonical["href"])[:_MAX_META])
    title_tag = soup.find("title") or soup.find("h1")
    title = " ".join(title_tag.get_text(" ", strip=True).split())[:300] if title_tag else ""
    if soup.head:
        soup.head.decompose()
    body = soup.body or soup
    text = _tidy(body.get_text("\n"))
    if title and not text.startswith(title):
        text = f"{title}\n{text}"
    return title, text, meta
