"""The sources panel: each source with its quote (plumbing; in a real Chromium:
test_browser_a11y.py)."""

from __future__ import annotations

from rag.schema import Answer, Citation
from ui.render import short_quote, sources_html


def _cite(n: int, quote: str) -> Citation:
    return Citation(n=n, source="a.txt", title="Same title", quote=quote, start=0, end=len(quote))


def test_each_source_and_each_closest_passage_shows_its_quote_escaped():
    answer = Answer(answer="x [1].", citations=[_cite(1, "Forty <b>soldiers</b>\n died.")])
    panel = sources_html(answer)
    assert (
        '<blockquote class="rag-quote">Forty &lt;b&gt;soldiers&lt;/b&gt; died.</blockquote>'
        in panel
    )
    refusal = Answer(
        answer="No.", refused=True, closest=[_cite(i, f"passage {i}") for i in (1, 2, 3)]
    )
    panel = sources_html(refusal)
    assert all(f">passage {i}</blockquote>" in panel for i in (1, 2, 3))  # distinct entries


def test_a_long_quote_is_cut_at_a_word():
    cut = short_quote("word " * 100, limit=30)
    assert cut == "word word word word word word…"
