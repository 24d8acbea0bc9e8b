"""Stage 2, chunking: split articles into sentences and overlapping chunks, keeping exact spans."""

from __future__ import annotations

import re

from rag.schema import Article, Chunk

# A sentence ends at . ! ? (plus closing quotes/brackets) before white space and a capital,
# digit or opening quote; or at a line break. Known abbreviations do not end a sentence.
_END = re.compile(r"""[.!?]+["'”’)\]]*(?=\s+["'“‘(\[]?[A-Z0-9])|\n+""")
_ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "st",
    "sr",
    "jr",
    "gen",
    "col",
    "lt",
    "sgt",
    "capt",
    "gov",
    "sen",
    "rep",
    "rev",
    "inc",
    "ltd",
    "co",
    "corp",
    "vs",
    "etc",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "u.s",
    "u.k",
    "u.n",
    "e.g",
    "i.e",
    "a.m",
    "p.m",
}


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Return (start, end) spans of the sentences in text[start:end], trimmed of white space."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cursor = start
    for match in _END.finditer(text, start, end):
        if match.group().startswith((".",)) and _is_abbreviation(text, cursor, match.start()):
            continue
        _add_trimmed(text, cursor, match.end(), spans)
        cursor = match.end()
    _add_trimmed(text, cursor, end, spans)
    return spans


def _is_abbreviation(text: str, sentence_start: int, dot: int) -> bool:
    word = re.search(r"([A-Za-z.]+)$", text[sentence_start:dot])
    if not word:
        return False
    token = word.group(1).lower().strip(".")
    if token == "no":  # "No. 10", but not 'He said "No."'
        return text[dot + 1 : dot + 3].strip()[:1].isdigit()
    return token in _ABBREVIATIONS or len(token) == 1  # "J. Smith", "U.S."


def _add_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))


def _split_long(span: tuple[int, int], text: str, size: int) -> list[tuple[int, int]]:
    """Cut a sentence longer than `size` at word boundaries."""
    start, end = span
    pieces = []
    while end - start > size:
        cut = text.rfind(" ", start + size // 2, start + size)
        cut = cut if cut > start else start + size
        pieces.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    pieces.append((start, end))
    return pieces


def chunk_article(article: Article, size: int = 1000, overlap: int = 200) -> list[Chunk]:
    """Group whole sentences into chunks of about `size` characters overlapping by ~`overlap`."""
    text = article.text
    sentences = [piece for span in split_sentences(text) for piece in _split_long(span, text, size)]
    chunks: list[Chunk] = []
    i = 0
    while i < len(sentences):
        j = i
        while j + 1 < len(sentences) and sentences[j + 1][1] - sentences[i][0] <= size:
            j += 1
        start, end = sentences[i][0], sentences[j][1]
        chunks.append(Chunk(article.source, len(chunks), start, end, text[start:end]))
        if j + 1 >= len(sentences):
            break
        # The next chunk repeats at least the last sentence, and more while within `overlap`.
        k = j if j > i and overlap > 0 else j + 1
        while k - 1 > i and end - sentences[k - 1][0] <= overlap:
            k -= 1
        i = k
    return chunks
