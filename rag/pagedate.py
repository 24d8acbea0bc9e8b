"""A web page's publication date: the day it was first published, never an update, and none
rather than a guess.

Looked for in order: JSON-LD `datePublished` (of an article first), `<meta>` tags that name the
publication date, microdata `itemprop="datePublished"`, `<time>` elements not marked as an
update, then htmldate's own search of the markup and the URL (`original_date=True`, without its
"extensive" scan of all the text, which takes copyright years and "last modified" lines for
publication dates). A timestamp's day is the day as written, in its own time zone.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

ARTICLE_TYPES = re.compile(r"article|posting|report|newsarticle|blog", re.I)
# <meta name/property/itemprop> that state when the page was first published, best first.
PUBLISHED_META = (
    "article:published_time",
    "article:published",
    "og:published_time",
    "og:article:published_time",
    "datepublished",
    "published_time",
    "publish-date",
    "publish_date",
    "publishdate",
    "publication_date",
    "pubdate",
    "parsely-pub-date",
    "sailthru.date",
    "dc.date.issued",
    "dcterms.issued",
    "dc.date.created",
    "dcterms.created",
    "dc.date",
    "dcterms.date",
    "date",
    "article.published",
    "datecreated",
)
_UPDATED = re.compile(r"updat|modif|revis|edited", re.I)
_ISO = re.compile(r"^\s*(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?![\d])")
_COMPACT = re.compile(r"^\s*(\d{4})(\d{2})(\d{2})(?:\D|$)")
_NUMERIC = re.compile(r"^\s*(\d{1,2})([/.])(\d{1,2})\2(\d{4})(?!\d)")
_FIRST_YEAR = 1900
# Dates that are not the page's: hCard birthdays, hCalendar events, and the works a page
# cites (their publication and access dates), "last modified" lines.
_NOT_PUBLISHED = " | ".join(
    [
        *(
            f'//*[contains(concat(" ", normalize-space(@class), " "), " {name} ")]'
            for name in ("bday", "dtstart", "dtend", "birthday", "dob")
        ),
        "//cite",
        '//*[contains(@id, "lastmod") or contains(@class, "lastmod")]',
        '//*[contains(@id, "modified") or contains(@class, "modified")]',
        '//*[contains(@class, "reference") or contains(@class, "citation")]',
    ]
)


def as_day(value: object, day_first: bool = False) -> str | None:
    """The calendar day (YYYY-MM-DD) a date string states as written, or None when it does not
    state a full date (only a year or month, a relative time, or nonsense)."""
    text = str(value or "").strip()
    if not text or len(text) > 80:
        return None
    parts: tuple[int, int, int] | None = None
    if m := _ISO.match(text) or _COMPACT.match(text):
        parts = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    elif m := _NUMERIC.match(text):
        a, b, year = int(m.group(1)), int(m.group(3)), int(m.group(4))
        day_first = day_first or m.group(2) == "." or a > 12
        parts = (year, b, a) if day_first else (year, a, b)
    else:
        parts = _spelled(text)
    if parts is None:
        return None
    try:
        day = dt.date(*parts)
    except ValueError:
        return None
    latest = dt.date.today() + dt.timedelta(days=2)
    return day.isoformat() if day.year >= _FIRST_YEAR and day <= latest else None


def _spelled(text: str) -> tuple[int, int, int] | None:
    """A date with the month as a word ("March 11, 2015 3:46 PM", "3 Oct 2024"); all of day,
    month and year must be given."""
    from dateutil import parser

    if not re.search(r"[A-Za-z]{3}", text) or not re.search(r"\b\d{4}\b", text):
        return None
    try:
        one = parser.parse(text, fuzzy=True, default=dt.datetime(2000, 1, 1))
        two = parser.parse(text, fuzzy=True, default=dt.datetime(2001, 2, 2))
    except (ValueError, OverflowError):
        return None
    if (one.year, one.month, one.day) != (two.year, two.month, two.day):
        return None  # a part was missing and filled from the default
    return one.year, one.month, one.day


def publication_date(
    tree: Any, objects: list[dict[str, Any]], url: str | None = None, lang: str = ""
) -> str | None:
    """The page's publication day (YYYY-MM-DD) or None; `tree` is the lxml document and
    `objects` its JSON-LD objects (`rag.extract.json_ld`)."""
    day_first = bool(lang) and not lang.lower().startswith(("en-us", "en_us"))
    for find in (_from_json_ld, _from_meta, _from_microdata, _from_time):
        if day := find(tree, objects, day_first):
            return day
    return _from_htmldate(tree, url)


def _from_json_ld(tree: Any, objects: list[dict[str, Any]], day_first: bool) -> str | None:
    ranked = sorted(objects, key=lambda o: not ARTICLE_TYPES.search(str(o.get("@type", ""))))
    for obj in ranked:
        if day := as_day(obj.get("datePublished"), day_first):
            return day
    return None


def _from_meta(tree: Any, objects: list[dict[str, Any]], day_first: bool) -> str | None:
    found: dict[str, str] = {}
    for meta in tree.iter("meta"):
        key = str(meta.get("property") or meta.get("name") or meta.get("itemprop") or "").lower()
        if key in PUBLISHED_META and key not in found and meta.get("itemprop") is None:
            found[key] = str(meta.get("content") or "")
    for key in PUBLISHED_META:
        if day := as_day(found.get(key), day_first):
            return day
    return None


def _from_microdata(tree: Any, objects: list[dict[str, Any]], day_first: bool) -> str | None:
    """itemprop="datePublished", an article's first (a page can hold a video's or a related
    story's too)."""
    candidates = []
    for el in tree.xpath('//*[@itemprop="datePublished"]'):
        value = el.get("content") or el.get("datetime") or el.text_content()
        scope = next((a for a in el.iterancestors() if a.get("itemscope") is not None), None)
        in_article = scope is not None and ARTICLE_TYPES.search(str(scope.get("itemtype", "")))
        candidates.append((not in_article, value))
    for _, value in sorted(candidates, key=lambda c: c[0]):
        if day := as_day(value, day_first):
            return day
    return None


def _from_time(tree: Any, objects: list[dict[str, Any]], day_first: bool) -> str | None:
    """The first <time datetime> that is not an update's, inside the article if there is one."""
    scope = next(iter(tree.xpath("//article")), tree)
    for el in scope.iter("time"):
        before = el.getprevious()
        parent = el.getparent()
        marks = [str(el.get(a) or "") for a in ("class", "itemprop", "id")]
        marks.append(before.text_content() if before is not None else "")
        marks.append((parent.text or "") if parent is not None else "")
        if _UPDATED.search(" ".join(marks)):
            continue
        if day := as_day(el.get("datetime"), day_first):
            return day
    return None


def _from_htmldate(tree: Any, url: str | None) -> str | None:
    from copy import deepcopy

    from htmldate import find_date

    # htmldate would take these for the page's date (Wikipedia's "bday dtstart published").
    tree = deepcopy(tree)
    for el in tree.xpath(_NOT_PUBLISHED):
        el.drop_tree()
    try:
        found = find_date(
            tree, url=url, original_date=True, extensive_search=False, outputformat="%Y-%m-%d"
        )
    except Exception:  # htmldate fails on odd markup; a page without a date is undated
        return None
    return as_day(found) if found else None
