"""Web pages: the article's own text, title, date and outlet (rag/extract.py, rag/pagedate.py).

The floors are measured on the frozen test part of the labelled pages (tests/data/readability)
with the scorer of bench/extract.py, and on the HTML files of the publication-date set
(tests/data/dates). No model is needed."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from rag.extract import READABILITY, SOUP, TRAFILATURA, extract_page, strip_site_name
from rag.pagedate import as_day
from tests.conftest import ROOT

DATES = ROOT / "tests" / "data" / "dates"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_extract", ROOT / "bench" / "extract.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def frozen():
    """Our figures on the frozen test part (44 pages)."""
    bench = _bench()
    return bench.evaluate("ours", bench.ours, bench.load_truth("test"), "test").figures()


def test_the_article_text_and_nothing_else(frozen):
    assert frozen["f1"] >= 0.95, frozen  # measured 0.979 (today's parser: 0.889)
    assert frozen["outside"] <= 0.05, frozen  # measured 1.0% (today's: 22.6%)


def test_titles_and_outlets(frozen):
    assert frozen["title"] >= 0.95, frozen  # measured 97.7% (today's: 79.5%)
    assert frozen["outlet"] >= 0.95, frozen  # measured 100% of 28 (today's: 82.1%)


def test_dates_of_the_labelled_pages(frozen):
    # Measured 86.5% of 37 with 1 of 7 undated pages given a date (today's parser: 2.7%);
    # 96.7% and 0 of 3 on the dev part. The target (93%, none invented) is not met on the
    # frozen part: the misses are htmldate's fallback (docs/quality.md).
    assert frozen["date"] >= 0.86, frozen
    assert frozen["invented"] <= 1, frozen


def test_dates_of_the_date_set_html_files():
    labels = json.loads((DATES / "labels.json").read_text())
    pages = [x for x in labels if x["file"].endswith(".html")]
    got = {
        x["file"]: extract_page((DATES / x["file"]).read_text()).metadata.get("date") for x in pages
    }
    wrong = {x["file"]: (got[x["file"]], x["date"]) for x in pages if got[x["file"]] != x["date"]}
    assert wrong == {}  # 32 dated (meta, JSON-LD, microdata, <time>, URL), 12 undated


@pytest.mark.parametrize(
    ("written", "day"),
    [
        ("2025-03-14", "2025-03-14"),
        ("2023-07-09T23:45:00-05:00", "2023-07-09"),  # the day as written, not UTC's
        ("20240115", "2024-01-15"),
        ("05/29/2007 09:49:00", "2007-05-29"),
        ("18.06.2024", "2024-06-18"),
        ("March 11, 2015 3:46 PM", "2015-03-11"),
        ("3 Oct 2024", "2024-10-03"),
        ("Spring 2025", None),
        ("March 2024", None),
        ("2 days ago", None),
        ("2024", None),
        ("TBC", None),
        ("2025-02-30", None),
        ("1066-10-14", None),
    ],
)
def test_a_date_is_a_full_day_or_none(written, day):
    assert as_day(written) == day


def test_day_first_pages():
    assert as_day("04/05/2024", day_first=True) == "2024-05-04"
    assert as_day("04/05/2024") == "2024-04-05"
    assert as_day("30/04/2025") == "2025-04-30"  # no month 30: day first


def test_the_site_name_is_cut_from_the_title():
    assert strip_site_name("Bridge reopens | Harbour Post", "Harbour Post") == "Bridge reopens"
    assert strip_site_name("Bridge reopens - Harbour Post", "", "Bridge reopens") == (
        "Bridge reopens"
    )
    assert strip_site_name("Minecraft 1.8 - The Bountiful Update", "Minecraft News") == (
        "Minecraft 1.8 - The Bountiful Update"
    )


PAGE = """<html lang="en-US"><head><title>{title} | The Herald</title>
<meta property="og:site_name" content="The Herald">
<link rel="canonical" href="{canonical}">
<script type="application/ld+json">
<![CDATA[{{"@type": "NewsArticle", "headline": "{title}", "datePublished": "2024-06-02T21:15:00-07:00",
"author": [{{"name": "Ann Lee"}}, {{"name": "Bo Chan"}}]}}]]>
</script></head>
<body><nav><a href="/">Home</a> <a href="/sport">Sport</a> Subscribe now</nav>
<article><h1>{title}</h1>{body}</article><footer>Copyright 2024 The Herald</footer></body></html>"""
BODY = "".join(
    f"<p>The council met on Tuesday to discuss item {i} of the harbour plan, which sets out "
    "how the quay will be rebuilt over the next five years at a cost of 12 million.</p>"
    for i in range(6)
)


def test_a_news_page_gives_its_metadata_and_only_its_article():
    page = extract_page(
        PAGE.format(title="Harbour plan agreed", canonical="https://h.example/a", body=BODY)
    )
    assert page.title == "Harbour plan agreed"
    assert page.extractor == TRAFILATURA
    assert page.metadata == {
        "extractor": "trafilatura",
        "date": "2024-06-02",
        "outlet": "The Herald",
        "author": "Ann Lee, Bo Chan",
        "url": "https://h.example/a",
        "lang": "en",
    }
    assert page.text.startswith("Harbour plan agreed\n")
    assert "item 5 of the harbour plan" in page.text
    assert "Subscribe now" not in page.text and "Copyright" not in page.text


def test_a_canonical_url_that_is_not_http_is_dropped():
    html = PAGE.format(title="T", canonical="javascript:alert(1)", body=BODY)
    assert "url" not in extract_page(html).metadata
    fetched = extract_page(html, "https://news.example/t").metadata
    assert fetched["url"] == "https://news.example/t"


def test_when_trafilatura_takes_in_a_gallery_readability_runs_and_says_so():
    # The Independent's page (dev part): trafilatura keeps a "Business news in pictures"
    # gallery, four times the article's length; readability-lxml keeps the article.
    html = (ROOT / "tests/data/readability/dev/bug-1255978/source.html").read_text()
    page = extract_page(html)
    assert page.extractor == READABILITY
    assert "hotel" in page.text and "Star Wars boosts economy" not in page.text


def test_when_no_extractor_finds_text_the_plain_parser_runs_and_says_so():
    page = extract_page("<html><head><title>Only a title here</title></head><body></body></html>")
    assert page.extractor == SOUP and page.text.startswith("Only a title here")
    assert "date" not in page.metadata  # undated: no date is invented


def test_empty_and_hostile_pages_do_not_crash():
    assert extract_page("").text == ""
    assert extract_page("<html><body><script>x</script></body></html>").text == ""
    deep = "<div>" * 5000 + "deep text" + "</div>" * 5000
    assert isinstance(extract_page(deep).text, str)
    assert extract_page(Path(DATES / "d006.html").read_text()).metadata["date"] == "2024-01-15"
