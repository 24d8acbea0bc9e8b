"""Stage 1, loading: read .txt, .md, .html and .pdf articles into `Article` values."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from rag.decoding import CONTROL, decode
from rag.errors import ArticleError, CorpusError
from rag.extract import parse_page
from rag.schema import Article

SUPPORTED_SUFFIXES = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf"}
_META_KEYS = ("date", "published", "outlet", "source", "url", "author")
_META_MAX_CHARS = 500
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)^(?:---|\.\.\.)[ \t]*$\n?", re.S | re.M)
_MD_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|\Z)", re.I | re.S)


def scan_corpus(corpus_dir: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """The article files under `corpus_dir` (sorted, hidden ones excluded), and the folders
    that could not be listed, as (folder relative to the corpus, reason) pairs.

    Links are listed, not followed: links to files (broken ones too) and links to folders,
    so that `load_article` can say why each is skipped (or, for a link to a file inside the
    corpus, read it when links are allowed).
    """
    if not corpus_dir.exists():
        raise CorpusError(
            f"Corpus folder {corpus_dir} does not exist. Create it and put articles "
            "(.txt, .md, .html, .pdf) in it, or set RAG_CORPUS_DIR."
        )
    if not corpus_dir.is_dir():
        raise CorpusError(
            f"{corpus_dir} is not a folder. Set RAG_CORPUS_DIR to a folder of articles."
        )
    files: list[Path] = []
    unlisted: list[tuple[str, str]] = []

    def on_error(exc: OSError) -> None:
        folder = Path(exc.filename) if exc.filename else corpus_dir
        unlisted.append((_relative(folder, corpus_dir), exc.strerror or str(exc)))

    for root, dirs, names in os.walk(corpus_dir, onerror=on_error, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [
            Path(root) / name
            for name in names
            if not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED_SUFFIXES
        ]
        files += [Path(root) / d for d in dirs if os.path.islink(Path(root) / d)]  # skipped
    for folder, reason in unlisted:
        if folder == ".":
            raise CorpusError(
                f"Corpus folder {corpus_dir} cannot be read ({reason}). Give the user running "
                "`rag ingest` read access to it (chmod a+rx), or set RAG_CORPUS_DIR."
            )
    return sorted(files), unlisted


def iter_corpus_files(corpus_dir: Path) -> list[Path]:
    """List the article files under `corpus_dir`, sorted, hidden files excluded."""
    return scan_corpus(corpus_dir)[0]


def source_name(path: Path, corpus_dir: Path) -> str:
    """The article's id: its path relative to the corpus, with forward slashes."""
    return path.relative_to(corpus_dir).as_posix()


def printable(name: str) -> str:
    """A file name safe to print and store: bytes that are not UTF-8 shown as \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def load_article(
    path: Path, corpus_dir: Path, max_bytes: int = 20 * 2**20, links: str = "skip"
) -> Article:
    """Read one article; raise ArticleError with a reason the admin can act on.

    Only files inside `corpus_dir` are read: a symbolic link is skipped with its reason
    (with `links="inside"`, a link to a file that stays inside the corpus is read), and so is
    anything whose opened file turns out to lie outside the corpus.
    """
    source = source_name(path, corpus_dir)
    if printable(source) != source:
        raise ArticleError(
            f"{printable(source)}: the file name is not valid UTF-8. Rename the file "
            "(e.g. `convmv -f latin1 -t utf8`) and run `rag ingest` again."
        )
    root = corpus_dir.resolve()
    _check_link(path, source, root, links)
    raw = _read(path, source, max_bytes, root, follow=links == "inside")
    digest = hashlib.sha256(raw).hexdigest()
    suffix = path.suffix.lower()
    notes: tuple[str, ...] = ()
    if suffix == ".pdf":
        title, text, meta = _parse_pdf(raw, source)
    else:
        decoded, notes = decode(raw, source)
        if suffix in (".html", ".htm"):
            title, text, meta = parse_page(decoded, path)
        else:
            title, text, meta = _parse_text(decoded, markdown=suffix != ".txt")
    if not text.strip():
        hint = " (a scanned PDF needs OCR first)" if suffix == ".pdf" else ""
        raise ArticleError(
            f"{source}: holds no text{hint}. Add the article's text or remove the file."
        )
    return Article(
        source=source,
        title=title or Path(source).stem,
        text=text,
        sha256=digest,
        metadata=meta,
        notes=notes,
    )


def load_corpus(
    corpus_dir: Path, max_bytes: int = 20 * 2**20, links: str = "skip"
) -> Iterator[Article | ArticleError]:
    """Yield every readable article, or the error that explains why a file was skipped."""
    for path in iter_corpus_files(corpus_dir):
        try:
            yield load_article(path, corpus_dir, max_bytes, links)
        except ArticleError as exc:
            yield exc


def _relative(path: Path, corpus_dir: Path) -> str:
    try:
        return printable(path.relative_to(corpus_dir).as_posix())
    except ValueError:
        return printable(str(path))


def _too_big(source: str, size: int, max_bytes: int) -> ArticleError:
    return ArticleError(
        f"{source}: {size / 2**20:.3g} MB is over the {round(max_bytes / 2**20, 2):g} MB limit. "
        "Split it or raise RAG_MAX_FILE_MB."
    )


def _inside(path: Path | str, root: Path) -> bool:
    return Path(path) == root or Path(path).is_relative_to(root)


def _check_link(path: Path, source: str, root: Path, links: str) -> None:
    """ArticleError for a symbolic link that is not to be read: broken, a loop, to a folder,
    leading outside the corpus, or any link unless `links` is "inside"."""
    if not path.is_symlink():
        return
    target = printable(os.readlink(path))
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        raise ArticleError(
            f"{source}: is a link to {target}, which does not exist. Fix or remove the link."
        ) from None
    except (RuntimeError, OSError):  # RuntimeError: a loop, before Python 3.13
        raise ArticleError(f"{source}: is a symbolic link loop. Fix or remove the link.") from None
    if real.is_dir():
        raise ArticleError(
            f"{source}: is a link to the folder {target}; links to folders are not followed. "
            "Move the folder into the corpus instead."
        )
    if not _inside(real, root):
        raise ArticleError(
            f"{source}: is a link to {target}, outside the corpus folder; it is not read. "
            "Copy the article into the corpus instead."
        )
    if links != "inside":
        raise ArticleError(
            f"{source}: is a symbolic link (to {target}); links are not followed. Copy the "
            "file instead, or set RAG_CORPUS_LINKS=inside to read links that stay inside "
            "the corpus."
        )


def _opened_path(fd: int, path: Path) -> str:
    """Where the file open as `fd` really is (Linux: from /proc; else the resolved path)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)


def _read(path: Path, source: str, max_bytes: int, root: Path, follow: bool = False) -> bytes:
    """The file's bytes; non-blocking open, so a pipe named like an article cannot hang us.
    Without `follow`, a link put in the file's place after the scan is refused (O_NOFOLLOW);
    and whatever was opened must lie inside `root`, the resolved corpus folder."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
        try:
            if not _inside(_opened_path(fd, path), root):
                raise ArticleError(
                    f"{source}: resolves to a file outside the corpus folder; it is not read. "
                    "Copy the article into the corpus instead."
                )
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ArticleError(
                    f"{source}: is not a regular file (a folder, pipe or device). "
                    "Remove it from the corpus."
                )
            if info.st_size > max_bytes:
                raise _too_big(source, info.st_size, max_bytes)
            handle, fd = os.fdopen(fd, "rb"), -1  # the handle owns the descriptor now
            with handle:
                raw = handle.read(max_bytes + 1)
        finally:
            if fd >= 0:
                os.close(fd)
    except FileNotFoundError as exc:
        if path.is_symlink():
            raise ArticleError(
                f"{source}: is a link to {printable(os.readlink(path))}, which does not exist. "
                "Fix or remove the link."
            ) from exc
        raise ArticleError(
            f"{source}: was deleted or moved while it was being ingested. Run `rag ingest` again."
        ) from exc
    except PermissionError as exc:
        raise ArticleError(
            f"{source}: cannot be read (permission denied). Give the user running "
            "`rag ingest` read access to it (chmod a+r)."
        ) from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:  # made a link since the scan
            raise ArticleError(
                f"{source}: is a symbolic link; links are not followed. Copy the file instead."
            ) from exc
        if exc.errno == errno.ELOOP:
            raise ArticleError(
                f"{source}: is a symbolic link loop. Fix or remove the link."
            ) from exc
        raise ArticleError(
            f"{source}: cannot be read ({exc.strerror or exc}). Check the file and its disk."
        ) from exc
    if len(raw) > max_bytes:  # it grew after the size check
        raise _too_big(source, len(raw), max_bytes)
    return raw


def _first_line_title(text: str) -> str:
    for line in text.split("\n"):
        stripped = line.strip().lstrip("#").strip()
        if any(ch.isalnum() for ch in stripped):  # not blank, not a rule like --- or ***
            return stripped[:300]
    return ""


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    """Split YAML front matter off the text: (metadata, body). Malformed front matter (it
    looks like `key: value` lines but is not valid YAML) is dropped; its metadata is lost."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    import yaml

    block = match.group(1)
    try:
        data = yaml.safe_load(block) if len(block) < 65536 else None
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict):
        looks_like_yaml = re.match(r"\s*[\w-]+\s*:", block) is not None
        return {}, text[match.end() :] if looks_like_yaml else text
    meta: dict[str, str] = {}
    for key, value in data.items():
        if key not in (*_META_KEYS, "title"):
            continue
        if not (isinstance(value, (str, int, float)) or hasattr(value, "isoformat")):
            continue  # None, lists, maps: str() of a nested (or alias-bomb) value can be huge
        clean = " ".join(str(value).split())[:_META_MAX_CHARS]
        if clean:
            meta[key] = clean
    return meta, text[match.end() :]


def _clean_meta(meta: dict[str, str]) -> dict[str, str]:
    # "source" is the article's path in the index: an outlet named there becomes "outlet".
    outlet = meta.pop("source", None)
    if outlet:
        meta.setdefault("outlet", outlet)
    return meta


def _parse_text(text: str, markdown: bool) -> tuple[str, str, dict[str, str]]:
    meta: dict[str, str] = {}
    if text.startswith("---"):
        meta, text = _front_matter(text)
    if markdown:  # raw HTML in Markdown: script and style bodies are not article text
        text = _MD_SCRIPT.sub("", text)
    title = meta.pop("title", "") or _first_line_title(text)
    return title, text, _clean_meta(meta)


def _parse_pdf(raw: bytes, source: str) -> tuple[str, str, dict[str, str]]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise FileNotDecryptedError("password required")
        text = "\n".join((page.extract_text() or "") for page in reader.pages)
        info_title = (reader.metadata.title if reader.metadata else None) or ""
    except FileNotDecryptedError as exc:
        raise ArticleError(
            f"{source}: is a password-protected PDF. Save a copy without a password, or remove it."
        ) from exc
    except Exception as exc:  # pypdf raises many types on damaged files
        raise ArticleError(
            f"{source}: is not a readable PDF ({type(exc).__name__}: {exc}). "
            "Re-export it or remove it."
        ) from exc
    text = CONTROL.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    title = " ".join(str(info_title).split())[:300]
    return title or _first_line_title(text), text, {}
