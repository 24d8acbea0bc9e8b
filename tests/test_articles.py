"""What a web page's metadata becomes: filterable Chroma metadata on its chunks, the article
listing (`rag articles`, /api/articles), citation fields, and the escaped "original" link."""

from __future__ import annotations

from rag.articles import format_table, get_article, list_articles
from rag.citations import to_citation
from rag.indexing import ingest
from rag.pipeline import open_index_for
from rag.schema import Citation, Evidence
from rag.settings import Settings
from rag.store import filterable
from tests.conftest import check_consistent
from ui.render import about_html, render_article, safe_url, sources_html

PAGE = """<html lang="en"><head><title>Quay rebuilt | Bay News</title>
<meta property="og:site_name" content="Bay News">
<meta property="article:published_time" content="2025-03-14T09:00:00+01:00">
<link rel="canonical" href="https://bay.example/quay"></head><body>
<nav>Home | Sport | Weather | Sign in</nav><article><h1>Quay rebuilt</h1>
<p>The old quay at Bay Harbour has been rebuilt at a cost of 3 million pounds, the council said on
Friday, and will reopen to fishing boats next week after two years of work.</p>
<p>Fishermen had moored in the outer harbour during the works, which replaced the stone wall
and the wooden pontoons damaged in the storms of 2022.</p></article>
<footer>Copyright Bay News. Newsletter sign-up.</footer></body></html>"""


def test_dates_become_filterable():
    assert filterable({"date": "2025-03-14", "outlet": "X"}) == {
        "date": "2025-03-14",
        "date_int": 20250314,
        "outlet": "X",
    }
    assert filterable({"date": "March 2025"}) == {"date": "March 2025"}  # not a day: no int
    assert filterable({}) == {}


def test_a_web_page_is_indexed_with_its_metadata_and_listed(tmp_path, fake_embeddings):
    corpus = tmp_path / "corpus"
    (corpus / "web" / "bay.example").mkdir(parents=True)
    (corpus / "web" / "bay.example" / "quay.html").write_text(PAGE)
    (corpus / "notes.txt").write_text("Council notes\n\nThe council met on Monday.\n")
    settings = Settings(corpus_dir=corpus, store_dir=tmp_path / "chroma")
    index = open_index_for(settings, fake_embeddings, create=True)
    report = ingest(corpus, index, progress=False)
    assert report.summary().splitlines()[-1] == (
        "Web pages: 1 extracted, 0 fell back to a simpler extractor; 0 undated."
    )
    check_consistent(index)
    chunks = index.collection.get(where={"date_int": {"$gte": 20250301}}, include=["metadatas"])
    assert {m["source"] for m in chunks["metadatas"]} == {"web/bay.example/quay.html"}
    assert all(m["outlet"] == "Bay News" for m in chunks["metadatas"])

    listing = list_articles(index)
    assert [a["id"] for a in listing] == ["notes.txt", "web/bay.example/quay.html"]
    notes, page = listing
    assert notes["date"] is None and notes["extractor"] == "txt"
    assert page["title"] == "Quay rebuilt" and page["date"] == "2025-03-14"
    assert page["outlet"] == "Bay News" and page["url"] == "https://bay.example/quay"
    assert page["extractor"] == "trafilatura" and page["lang"] == "en"
    full = get_article(index, "web/bay.example/quay.html")
    assert full is not None and page["chars"] == len(full["text"])
    assert "Sign in" not in full["text"] and "Newsletter" not in full["text"]
    assert get_article(index, "missing.html") is None
    table = format_table(listing)
    assert "undated     Council notes" in table and "2 articles." in table
    assert "[trafilatura, " in table and "Bay News https://bay.example/quay" in table


def test_a_citation_carries_the_articles_date_outlet_and_url():
    e = Evidence(
        1, "a.html", "A", 0, 5, "Hello", 0.9, "2025-03-14", "Bay News", "https://b.example/a"
    )
    c = to_citation(1, e)
    assert (c.date, c.outlet, c.url, c.author) == (
        "2025-03-14",
        "Bay News",
        "https://b.example/a",
        None,
    )
    plain = to_citation(2, Evidence(2, "b.txt", "B", 0, 5, "Hello", 0.9))
    assert plain.model_dump()["date"] is None and plain.url is None


def test_only_http_links_are_made_and_everything_is_escaped():
    assert safe_url("https://x.example/a?b=1") == "https://x.example/a?b=1"
    for bad in ("javascript:alert(1)", "data:text/html,x", "//x.example", "/local", "https://x y"):
        assert safe_url(bad) is None, bad
    shown = about_html("<b>Evil</b>", "2025-01-01", 'https://x.example/"><script>alert(1)</script>')
    assert "<b>" not in shown and "<script>" not in shown
    assert 'href="https://x.example/&quot;&gt;&lt;script&gt;' in shown
    assert "original" not in about_html("Out", None, "javascript:alert(1)")


def test_the_sources_list_and_viewer_show_date_outlet_and_the_original_link():
    from rag.schema import Answer

    cite = Citation(n=1, source="web/a.html", title="T", quote="q", start=0, end=1,
                    date="2025-03-14", outlet="Bay News", url="https://bay.example/quay")  # fmt: skip
    html = sources_html(Answer(answer="X [1].", citations=[cite]), 0)
    assert '<span class="rag-outlet">Bay News</span>' in html
    assert '<span class="rag-date">2025-03-14</span>' in html
    assert 'class="rag-original" href="https://bay.example/quay" target="_blank"' in html
    viewer = render_article("web/a.html", "T", "q and more", 0, 1, 1, cite)
    assert 'href="https://bay.example/quay"' in viewer and "Bay News" in viewer
