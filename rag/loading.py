"""Stage 1, loading: read .txt, .md, .html and .pdf articles into `Article` values."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

from rag.errors import ArticleError, CorpusError
from rag.schema import Article

SUPPORTED_SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf"}
_META_KEYS = ("date", "published", "outlet", "source", "url", "author")


def iter_corpus_files(corpus_dir: Path) -> list[Path]:
    """List the article files under `corpus_dir`, sorted, hidden files excluded."""
    if not corpus_dir.exists():
        raise CorpusError(
            f"Corpus folder {corpus_dir} does not exist. Create it and put articles "
            "(.txt, .md, .html, .pdf) in it, or set RAG_CORPUS_DIR."
        )
    if not corpus_dir.is_dir():
        raise CorpusError(
            f"{corpus_dir} is not a folder. Set RAG_CORPUS_DIR to a folder of articles."
        )
    files = [
        p
        for p in corpus_dir.rglob("*")
        if p.suffix.lower() in SUPPORTED_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(corpus_dir).parts)
        and p.is_file()
    ]
    return sorted(files)


def source_name(path: Path, corpus_dir: Path) -> str:
    """The article's id: its path relative to the corpus, with forward slashes."""
    return path.relative_to(corpus_dir).as_posix()


def load_article(path: Path, corpus_dir: Path, max_bytes: int = 20 * 2**20) -> Article:
    """Read one article; raise ArticleError with a reason the admin can act on."""
    source = source_name(path, corpus_dir)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ArticleError(
                f"{source}: {size / 2**20:.1f} MB is over the {max_bytes / 2**20:.0f} MB limit. "
                "Split it or raise RAG_MAX_FILE_MB."
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ArticleError(
            f"{source}: cannot be read ({exc.strerror}). Check its permissions."
        ) from exc
    digest = hashlib.sha256(raw).hexdigest()
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        title, text, meta = _parse_pdf(raw, source)
    else:
        if b"\x00" in raw[:8192]:
            raise ArticleError(
                f"{source}: looks like a binary file, not text. Remove it from the corpus."
            )
        decoded = _decode(raw)
        if suffix in (".html", ".htm"):
            title, text, meta = _parse_html(decoded)
        else:
            title, text, meta = _parse_text(decoded, markdown=suffix != ".txt")
    if not text.strip():
        raise ArticleError(f"{source}: holds no text. Add the article's text or remove the file.")
    return Article(
        source=source, title=title or Path(source).stem, text=text, sha256=digest, metadata=meta
    )


def load_corpus(corpus_dir: Path, max_bytes: int = 20 * 2**20) -> Iterator[Article | ArticleError]:
    """Yield every readable article, or the error that explains why a file was skipped."""
    for path in iter_corpus_files(corpus_dir):
        try:
            yield load_article(path, corpus_dir, max_bytes)
        except ArticleError as exc:
            yield exc


def _decode(raw: bytes) -> str:
    # UTF-8 first; old news archives are often cp1252 / latin-1 (which decodes any byte).
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _first_line_title(text: str) -> str:
    for line in text.split("\n"):
        stripped = line.strip().lstrip("#").strip()
        if stripped:
            return stripped[:300]
    return ""


def _parse_text(text: str, markdown: bool) -> tuple[str, str, dict[str, str]]:
    meta: dict[str, str] = {}
    if text.startswith("---\n"):
        import frontmatter  # light, but only needed for files with front matter

        try:
            post = frontmatter.loads(text)
        except Exception:  # malformed front matter: keep the file as plain text
            post = None
        if post is not None:
            meta = {k: str(v) for k, v in post.metadata.items() if k in (*_META_KEYS, "title")}
            text = post.content
    title = meta.pop("title", "") or _first_line_title(text)
    return title, text, meta


def _parse_html(html: str) -> tuple[str, str, dict[str, str]]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "iframe", "svg", "nav"]):
        tag.decompose()
    meta: dict[str, str] = {}
    for tag in soup.find_all("meta"):
        key = (tag.get("name") or tag.get("property") or "").lower().removeprefix("og:")
        key = {"site_name": "outlet", "article:published_time": "date"}.get(key, key)
        if key in _META_KEYS and tag.get("content"):
            meta[key] = str(tag["content"])
    canonical = soup.find("link", rel="canonical")
    if canonical and canonical.get("href"):
        meta.setdefault("url", str(canonical["href"]))
    title_tag = soup.find("title") or soup.find("h1")
    title = title_tag.get_text(" ", strip=True) if title_tag else ""
    if soup.head:
        soup.head.decompose()
    body = soup.body or soup
    lines = (re.sub(r"[ \t\xa0]+", " ", line).strip() for line in body.get_text("\n").split("\n"))
    text = "\n".join(line for line in lines if line)
    if title and not text.startswith(title):
        text = f"{title}\n{text}"
    return title or _first_line_title(text), text, meta


def _parse_pdf(raw: bytes, source: str) -> tuple[str, str, dict[str, str]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        text = "\n".join((page.extract_text() or "") for page in reader.pages)
        info_title = (reader.metadata.title if reader.metadata else None) or ""
    except (PdfReadError, ValueError, KeyError) as exc:
        raise ArticleError(
            f"{source}: is not a readable PDF ({exc}). Re-export it or remove it."
        ) from exc
    text = text.replace("\r\n", "\n")
    return info_title.strip() or _first_line_title(text), text, {}
