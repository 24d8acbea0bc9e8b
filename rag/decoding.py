"""Bytes to text for the loader: a BOM's encoding, UTF-16 without a BOM, UTF-8 (a file that is
mostly UTF-8 keeps it, its few bad bytes replaced and noted), else a legacy 8-bit encoding;
binary files and control characters are refused or blanked."""

from __future__ import annotations

import codecs
import re

from rag.errors import ArticleError

# C0/C1 control characters other than tab and newline: never part of an article's text.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _not_text(source: str) -> ArticleError:
    return ArticleError(
        f"{source}: looks like a binary file, not text. Remove it from the corpus, "
        "or convert it to .txt, .md, .html or .pdf."
    )


def decode(raw: bytes, source: str) -> tuple[str, tuple[str, ...]]:
    """Bytes -> (text, notes): a BOM's encoding, else UTF-8 (a mostly-UTF-8 file keeps its
    UTF-8, only its bad bytes replaced by U+FFFD and noted), else a legacy 8-bit encoding."""
    encoding = next((enc for bom, enc in _BOMS if raw.startswith(bom)), None)
    encoding = encoding or _utf16_without_bom(raw)
    notes: tuple[str, ...] = ()
    if encoding:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise _not_text(source) from exc
    elif b"\x00" in raw[:8192]:
        raise _not_text(source)
    else:
        utf8, bad = _decode_utf8(raw)
        text = utf8 if utf8 is not None else _decode_legacy(raw)
        if bad:
            notes = (
                f"{source}: {bad} invalid UTF-8 byte sequence{'s' * (bad > 1)} replaced by "
                "\ufffd; the rest is read as UTF-8. Re-save the file as UTF-8 to fix it.",
            )
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if len(CONTROL.findall(text)) > max(2, len(text) // 100):
        raise _not_text(source)
    return CONTROL.sub(" ", text), notes


def _decode_utf8(raw: bytes) -> tuple[str | None, int]:
    """(text, invalid sequences replaced) when the file is UTF-8, or mostly so: at least as
    many valid multi-byte characters as invalid sequences. (None, 0) when it is not UTF-8 at
    all: a legacy file's accents are almost never valid UTF-8."""
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        pass
    text = raw.decode("utf-8", "replace")
    bad = text.count("\ufffd") - raw.count("\ufffd".encode())
    good = sum(1 for ch in text if ord(ch) > 127) - bad
    return (text, bad) if good >= bad else (None, 0)


def _utf16_without_bom(raw: bytes) -> str | None:
    """UTF-16 text saved without a BOM: mostly-ASCII text has a NUL in every other byte."""
    sample = raw[:4096]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) == 0:
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) == 0:
        return "utf-16-be"
    return None


def _decode_legacy(raw: bytes) -> str:
    # Old Western news archives are cp1252 / latin-1 (which decodes any byte). When most
    # letters come out non-ASCII the text is in another script (cp1251, Shift-JIS, GBK...):
    # ask charset_normalizer, which guesses those well (but not the Western ones).
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    letters = [ch for ch in text if ch.isalpha()]
    if letters and sum(ord(ch) > 127 for ch in letters) > 0.3 * len(letters):
        try:
            from charset_normalizer import from_bytes
        except ImportError:  # pragma: no cover - installed with requests
            return text
        best = from_bytes(raw).best()
        if best is not None:
            return str(best)
    return text
