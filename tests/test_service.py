"""ui.service, ui.loader and the page's callbacks and rendering, without a server or a browser.

The pipeline parts are real where named (embedding model, Chroma, verifier); the LLM is a fake
so the plumbing runs in seconds (the real LLM runs in test_server.py).
"""

from __future__ import annotations

import threading
import time

import pytest

from rag.errors import (
    BusyError,
    IndexMissingError,
    ModelLoadingError,
    QuestionError,
)
from rag.schema import Answer, Citation, Retry, Sentence, Token
from rag.settings import Settings
from tests.conftest import OFF_RAMP, article_text, fake_chat
from ui.chat import ChatHandlers, messages
from ui.gate import Admission
from ui.loader import Loader
from ui.render import (
    answer_markdown,
    escape_markdown,
    find_citation,
    parse_ref,
    render_article,
    sources_html,
    status_markdown,
)
from ui.service import ChatService

QUESTION = "How many Indian soldiers were killed in the suicide bombing?"
REPLY = "A suicide bombing in Indian-controlled Kashmir killed 40 Indian soldiers [1]."
EVIL = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def fake_llm(n: int = 20):
    return fake_chat(*[REPLY] * n)


def service_for(settings: Settings, **loader_args) -> ChatService:
    return ChatService(settings, Loader(settings, **loader_args))


def admit(service: ChatService, question: object, history: object = None) -> Admission:
    """A question through the gate, as the REST API admits it (no token set)."""
    return service.admit("api", client="test", question=question, history=history)


def _answer(text: str = "Forty died [1]. Pakistan replied [2].") -> Answer:
    cites = [
        Citation(n=1, source="a.txt", title=f"Title {EVIL}", quote="q1", start=0, end=2),
        Citation(n=2, source=f"b{EVIL}.txt", title="B", quote="q2", start=3, end=5),
    ]
    return Answer(answer=text, citations=cites, question="How many died?", removed=[EVIL])


# ---- rendering ----------------------------------------------------------------------------


def test_escape_markdown_leaves_no_tags_or_markup():
    out = escape_markdown(f"**bold** [x](javascript:alert(1)) {EVIL} $$x$$ & 5 < 6")
    assert "<" not in out and ">" not in out
    assert r"\*\*bold\*\*" in out and r"\[x\]" in out and r"\$\$x\$\$" in out
    assert "&amp; 5 &lt; 6" in out


def test_answer_markdown_links_known_markers_only_and_escapes_the_rest():
    md = answer_markdown(_answer(f"Forty died [1]. {EVIL} [2] [7]."), turn=3)
    assert '<a class="rag-cite" href="#cite-3-1"' in md
    assert 'href="#cite-3-2"' in md
    assert "#cite-3-7" not in md and r"\[7\]" in md  # an unknown marker stays plain text
    assert "<img" not in md and "<script" not in md and "&lt;img" in md


def test_sources_html_lists_citations_and_the_standalone_question_escaped():
    html = sources_html(_answer(), turn=0)
    assert "Question answered: <q>How many died?</q>" in html
    assert html.count('class="rag-source"') == 2 and 'href="#cite-0-2"' in html
    assert "<img" not in html and "<script" not in html and "&lt;script&gt;" in html
    assert "1 unsupported sentence(s) removed" in html
    refused = Answer(answer="The articles don't answer this question.", refused=True)
    assert "No sources" in sources_html(refused)
    near = refused.model_copy(update={"closest": _answer().citations})
    html = sources_html(near, turn=4)
    assert "The closest ones" in html and 'href="#cite-4-1"' in html and "rag-closest" in html
    assert find_citation(near, 2) == near.closest[1] and find_citation(near, 9) is None
    assert "Sources of the answer appear here" in sources_html(None)


def test_render_article_marks_exactly_the_passage_and_escapes_everything():
    text = f"Intro {EVIL}. The passage & more. Tail <b>x</b>."
    start = text.index("The passage")
    end = start + len("The passage & more.")
    html = render_article("dir/a&b.txt", f"T {EVIL}", text, start, end, n=2)
    assert '<mark id="rag-passage">The passage &amp; more.</mark>' in html
    assert "<img" not in html and "<script" not in html and "<b>" not in html
    assert 'data-source="dir/a&amp;b.txt"' in html and "[2] T &lt;img" in html
    clamped = render_article("a.txt", "T", "abc", -5, 99)
    assert '<mark id="rag-passage">abc</mark>' in clamped


def test_parse_ref():
    assert parse_ref("2-3") == (2, 3)
    assert parse_ref("#cite-0-12") == (0, 12)
    for bad in ("", "x-1", "1", "1-2-3", None, "-1-2"):
        assert parse_ref(bad) is None


def test_status_line_says_loading_ready_or_the_reason_escaped():
    assert "Ready." in status_markdown({"status": "ready", "message": "Ready."})
    assert "Model loading" in status_markdown({"status": "loading", "message": ""})
    line = status_markdown({"status": "error", "message": f"No index {EVIL}"})
    assert line.startswith("**Not ready:**") and "<img" not in line


# ---- ChatService with the real retrieval and verifier -------------------------------------


@pytest.fixture(scope="module")
def ready_service(seed_settings, seed_index, embeddings):
    service = service_for(seed_settings, llm=fake_llm(), embeddings=embeddings)
    assert service.state == "loading"
    service.start()
    assert service.loader.wait_ready(120), service.loader.error
    return service


def test_before_loading_questions_get_model_loading():
    service = ChatService(Settings())  # never started: stays "loading"
    assert service.status() == {"status": "loading", "message": "Model loading…"}
    with pytest.raises(QuestionError):  # bad questions are refused before waiting for the model
        admit(service, "   ")
    with pytest.raises(ModelLoadingError, match="still loading"):
        service.ask(admit(service, QUESTION))
    with pytest.raises(ModelLoadingError):
        service.article(OFF_RAMP)
    assert not service.loader.wait_ready(0.3)


def test_ask_and_stream_give_the_verified_cited_answer(ready_service):
    assert ready_service.status()["status"] == "ready"
    answer = ready_service.ask(admit(ready_service, QUESTION))
    assert not answer.refused and "40" in answer.answer and answer.citations
    parts = list(ready_service.stream(admit(ready_service, QUESTION, [("Hi?", "Hello.")])))
    events, final = parts[:-1], parts[-1]
    assert all(isinstance(e, Token | Retry | Sentence) for e in events)
    assert sum(isinstance(e, Token) for e in events) > 3  # streamed, not delivered whole
    assert any(isinstance(e, Sentence) for e in events)  # checked sentences come as they pass
    assert isinstance(final, Answer) and final.citations
    c = final.citations[0]
    assert c.source == OFF_RAMP and article_text(OFF_RAMP)[c.start : c.end] == c.quote
    turns = [{"question": QUESTION, "answer": final.to_json_dict()}]
    handlers = ChatHandlers(ready_service)

    class Click:
        _data = {"ref": f"0-{c.n}"}

    html = handlers.open_citation(turns, Click())  # type: ignore[arg-type]
    assert f'<mark id="rag-passage">{c.quote}</mark>' in html.replace("&#x27;", "'")
    assert ready_service.article("nope.txt") is None


def test_an_abandoned_stream_does_not_keep_the_llm(ready_service):
    stream = ready_service.stream(admit(ready_service, QUESTION))
    assert isinstance(next(stream), Token)
    del stream  # the reader went away after one token
    result = {}
    query = admit(ready_service, QUESTION)
    worker = threading.Thread(target=lambda: result.update(a=ready_service.ask(query)))
    worker.start()
    worker.join(60)
    assert not worker.is_alive() and result["a"].citations


def test_missing_index_is_reported_then_picked_up_after_ingest(tmp_path, embeddings):
    from rag.pipeline import run_ingest
    from tests.conftest import CORPUS

    settings = Settings(corpus_dir=CORPUS, store_dir=tmp_path / "chroma")
    service = service_for(settings, llm=fake_llm(), embeddings=embeddings, retry_every=0.2)
    service.start()
    assert not service.loader.wait_ready(60)
    assert service.state == "error" and "rag ingest" in service.status()["message"]
    with pytest.raises(IndexMissingError, match="rag ingest"):
        service.ask(admit(service, QUESTION))
    run_ingest(settings, progress=False)
    deadline = time.monotonic() + 60
    while service.state != "ready" and time.monotonic() < deadline:  # retries on its own
        time.sleep(0.2)
    assert service.state == "ready", service.loader.error
    assert service.ask(admit(service, QUESTION)).citations


class _WarmFails(type(fake_chat())):
    """A fake model whose prompt-cache warm-up fails (the real warm-up: test_e2e, test_server)."""

    asked: list = []

    def warm(self, messages) -> None:
        self.asked.append(messages)
        raise RuntimeError("llama_decode returned -3")

    def rewarm(self) -> None:
        pass


def test_a_failed_warm_up_is_logged_and_the_service_answers(
    seed_settings, seed_index, embeddings, caplog
):
    llm = _WarmFails(replies=[REPLY] * 2, prompts=[])
    service = service_for(seed_settings, llm=llm, embeddings=embeddings)
    with caplog.at_level("WARNING"):
        service.start()
        assert service.loader.wait_ready(120), service.loader.error
        service.loader.thread.join(30)  # the warm-up runs after "ready", in the loading thread
    assert "Question:" in llm.asked[-1][-1].content  # the answer prompt, question left blank
    assert "Could not warm the prompt cache (llama_decode returned -3)" in caplog.text
    assert service.ask(admit(service, QUESTION)).citations


class _SlowQA:
    """A QA stand-in whose answer waits for `go`: to fill the wait queue."""

    def __init__(self) -> None:
        self.go = threading.Event()

    def stream(self, query):
        self.go.wait(30)
        yield Token("tok")
        yield Answer(answer="done")


def test_queue_limit_refuses_extra_questions_until_one_finishes():
    slow = _SlowQA()
    settings = Settings(queue_limit=1)
    service = service_for(settings, qa=slow)
    first = service.stream(admit(service, "one?"))
    with pytest.raises(BusyError, match="already waiting"):
        service.stream(admit(service, "two?"))
    slow.go.set()
    assert [p.text if isinstance(p, Token) else p.answer for p in first] == ["tok", "done"]
    assert list(service.stream(admit(service, "three?")))[-1].answer == "done"


# ---- the UI module without a browser ------------------------------------------------------


def test_ui_messages_are_rebuilt_from_session_turns_escaped():
    turns = [
        {"question": EVIL, "answer": _answer().to_json_dict()},
        {"question": "q2", "answer": None, "error": f"bad {EVIL}"},
    ]
    msgs = messages(turns, pending="q3 <b>", partial="par")
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 3
    assert all("<img" not in m["content"] and "<script" not in m["content"] for m in msgs)
    assert 'href="#cite-0-1"' in msgs[1]["content"]
    assert msgs[3]["content"].startswith("**Error:**") and msgs[-1]["content"] == "par"


def test_ui_has_the_page_the_widget_and_an_ask_endpoint():
    from ui.page import build_blocks

    blocks = build_blocks(service_for(Settings(), qa=_SlowQA()))
    config = blocks.get_config_file()
    assert [p[0] for p in config["pages"]] == ["", "widget"]
    names = {d.get("api_name") for d in config["dependencies"]}
    assert "ask" in names
    llm_events = [fn for fn in blocks.fns.values() if fn.concurrency_id == "llm"]
    # The chat on both pages (Enter, button, example) and the API endpoint share one group
    # that Gradio leaves unbounded: the gate bounds the questions, and refuses at once.
    assert len(llm_events) == 7 and all(fn.concurrency_limit is None for fn in llm_events)
    assert all(fn.queue for fn in llm_events)
    # Only /ask is an API; every page handler is private (not callable by gradio_client).
    public = [fn.api_name for fn in blocks.fns.values() if fn.api_visibility != "private"]
    assert public == ["ask"]
