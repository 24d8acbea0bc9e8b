"""Stage 1: reading articles of every supported format, and refusing bad files clearly."""

from __future__ import annotations

import pytest

from rag.errors import ArticleError, CorpusError
from rag.loading import iter_corpus_files, load_article, load_corpus
from tests.conftest import CORPUS, OFF_RAMP


def test_seed_corpus_titles_come_from_first_line():
    articles = {a.source: a for a in load_corpus(CORPUS)}
    assert set(articles) == {OFF_RAMP, "india-pakistan-us-mediation-backchannel-diplomacy.txt"}
    assert articles[OFF_RAMP].title == (
        "India and Pakistan May Have an Off-Ramp After Their Clash. Will They Take It?"
    )
    assert articles[OFF_RAMP].text == (CORPUS / OFF_RAMP).read_text(encoding="utf-8")


def test_markdown_front_matter_gives_title_and_metadata(tmp_path):
    (tmp_path / "a.md").write_text(
        "---\ntitle: Floods hit the coast\ndate: 2024-05-01\noutlet: Daily News\n"
        "url: https://news.example/floods\nsecret: x\n---\n# Heading\n\nWater rose fast.\n"
    )
    article = load_article(tmp_path / "a.md", tmp_path)
    assert article.title == "Floods hit the coast"
    assert article.metadata == {
        "date": "2024-05-01",
        "outlet": "Daily News",
        "url": "https://news.example/floods",
    }
    assert "Water rose fast." in article.text and "secret" not in article.text


def test_markdown_heading_is_title_without_front_matter(tmp_path):
    (tmp_path / "b.md").write_text("\n# Storm warning issued\n\nWinds of 100 km/h.\n")
    assert load_article(tmp_path / "b.md", tmp_path).title == "Storm warning issued"


def test_html_title_meta_and_scripts_removed(tmp_path):
    (tmp_path / "c.html").write_text(
        "<html><head><title>Election results</title>"
        '<meta property="og:site_name" content="The Herald">'
        '<meta name="date" content="2024-06-02"><link rel="canonical" href="https://h.example/e">'
        "<script>alert('x')</script></head><body><h1>Election results</h1>"
        "<p>The party won 52 seats.</p><script>document.write('evil')</script>"
        "<style>p{}</style></body></html>"
    )
    article = load_article(tmp_path / "c.html", tmp_path)
    assert article.title == "Election results"
    assert article.metadata == {
        "outlet": "The Herald",
        "date": "2024-06-02",
        "url": "https://h.example/e",
        "extractor": "trafilatura",  # a short page: trafilatura's text, the others found less
    }
    assert "The party won 52 seats." in article.text
    assert "alert" not in article.text and "evil" not in article.text and "p{}" not in article.text


def _minimal_pdf(text: str) -> bytes:
    """A one-page PDF with `text` in Helvetica, written by hand (no PDF writer needed)."""
    stream = f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 200] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def test_pdf_text_is_extracted(tmp_path):
    (tmp_path / "d.pdf").write_bytes(_minimal_pdf("Rail strike ends after 3 days."))
    article = load_article(tmp_path / "d.pdf", tmp_path)
    assert "Rail strike ends after 3 days." in article.text
    assert article.title == "Rail strike ends after 3 days."


def test_broken_pdf_is_refused(tmp_path):
    (tmp_path / "e.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    with pytest.raises(ArticleError, match="PDF"):
        load_article(tmp_path / "e.pdf", tmp_path)


def test_legacy_encoding_is_read(tmp_path):
    raw = (
        "Chelsea sack Mutu\n\n" + "The striker, a £15.8m signing, was sacked on Friday. " * 3
    ).encode("latin-1")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    (tmp_path / "old.txt").write_bytes(raw)
    article = load_article(tmp_path / "old.txt", tmp_path)
    assert article.title and len(article.text) > 100


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "holds no text"),
        (b"   \n\n  ", "holds no text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path, content, message):
    (tmp_path / "bad.txt").write_bytes(content)
    with pytest.raises(ArticleError, match=message):
        load_article(tmp_path / "bad.txt", tmp_path)


def test_huge_file_is_refused(tmp_path):
    (tmp_path / "huge.txt").write_bytes(b"word " * 300_000)
    with pytest.raises(ArticleError, match="RAG_MAX_FILE_MB"):
        load_article(tmp_path / "huge.txt", tmp_path, max_bytes=1_000_000)


def test_missing_corpus_says_what_to_do(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        iter_corpus_files(tmp_path / "nope")


def test_hidden_and_unsupported_files_are_ignored(tmp_path):
    (tmp_path / ".draft.txt").write_text("Hidden\nx")
    (tmp_path / "image.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "story.txt").write_text("Story\nText.")
    assert [p.name for p in iter_corpus_files(tmp_path)] == ["story.txt"]
    assert next(load_corpus(tmp_path)).source == "sub/story.txt"


# ---- one stray byte, and links: the corpus folder is the boundary --------------------------


def test_a_stray_byte_in_a_utf8_file_is_replaced_not_the_whole_file_reread(tmp_path):
    text = "Transfer fees\n\nThe club paid £15m for José Núñez, the “best” signing.\n"
    raw = text.encode("utf-8").replace(b"the \xe2\x80\x9c", b"the \x92\xe2\x80\x9c", 1)
    (tmp_path / "stray.txt").write_bytes(raw)
    article = load_article(tmp_path / "stray.txt", tmp_path)
    assert "£15m" in article.text and "José Núñez" in article.text and "“best”" in article.text
    assert article.text == text.replace("the “", "the \ufffd“")  # only the bad byte replaced
    assert article.notes == (
        "stray.txt: 1 invalid UTF-8 byte sequence replaced by \ufffd; the rest is read as "
        "UTF-8. Re-save the file as UTF-8 to fix it.",
    )
    # A file that is not UTF-8 at all is still read as the legacy encoding it is in.
    (tmp_path / "legacy.txt").write_bytes(text.encode("cp1252", errors="replace"))
    legacy = load_article(tmp_path / "legacy.txt", tmp_path)
    assert "£15m" in legacy.text and "José" in legacy.text and legacy.notes == ()


@pytest.fixture
def linked(tmp_path):
    """A corpus with a good article, and links: to a file outside it, to /etc/passwd, to a
    folder outside, to an article inside it."""
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    corpus.mkdir()
    outside.mkdir()
    (outside / "secret.env").write_text("Secret\n\nRAG_API_TOKEN=hunter2-secret\n")
    (corpus / "good.txt").write_text("Good news\n\nThe bridge reopened on Monday.\n")
    (corpus / "secret.txt").symlink_to("../outside/secret.env")
    (corpus / "passwd.txt").symlink_to("/etc/passwd")
    (corpus / "elsewhere").symlink_to(outside, target_is_directory=True)
    (corpus / "inside.txt").symlink_to("good.txt")
    return corpus


def _outcomes(corpus, links: str) -> dict[str, str]:
    out = {}
    for item in load_corpus(corpus, links=links):
        name = item.source if not isinstance(item, ArticleError) else str(item).split(":")[0]
        out[name] = "read" if not isinstance(item, ArticleError) else str(item)
    return out


@pytest.mark.parametrize("links", ["skip", "inside"])
def test_links_out_of_the_corpus_are_never_read(linked, links):
    got = _outcomes(linked, links)
    assert set(got) == {"good.txt", "secret.txt", "passwd.txt", "elsewhere", "inside.txt"}
    assert got["good.txt"] == "read"
    assert (
        "is a link to ../outside/secret.env, outside the corpus folder; it is not read"
        in (got["secret.txt"])
    )
    assert "is a link to /etc/passwd, outside the corpus folder" in got["passwd.txt"]
    assert "links to folders are not followed" in got["elsewhere"]
    if links == "skip":
        assert (
            "links are not followed" in got["inside.txt"]
            and "RAG_CORPUS_LINKS" in (got["inside.txt"])
        )
    else:  # the setting allows links that stay inside
        assert got["inside.txt"] == "read"


def test_a_file_swapped_for_a_link_after_the_scan_is_not_followed(linked, tmp_path):
    files = iter_corpus_files(linked)
    good = linked / "good.txt"
    assert good in files
    good.unlink()
    good.symlink_to(tmp_path / "outside" / "secret.env")  # between the scan and the read
    for links in ("skip", "inside"):
        with pytest.raises(ArticleError, match="outside the corpus"):
            load_article(good, linked, links=links)
    # What was opened is checked, not the name: a link in the path is caught too.
    with pytest.raises(ArticleError, match="outside the corpus"):
        load_article(linked / "elsewhere" / "secret.env", linked, links="inside")
