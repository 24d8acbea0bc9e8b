"""Stage 10 plumbing with a fake chat model (behaviour with the real LLM is in test_e2e.py)."""

from __future__ import annotations

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from rag.chain import QA, clean_question
from rag.citations import Verifier
from rag.errors import QuestionError
from rag.retrieval import Retriever
from rag.schema import Answer
from tests.conftest import OFF_RAMP


class RecordingFake(GenericFakeChatModel):
    """A fake chat model that remembers the prompts it was sent."""

    prompts: list = []

    def _generate(self, messages, *args, **kwargs):
        self.prompts.append(messages)
        return super()._generate(messages, *args, **kwargs)

    def _stream(self, messages, *args, **kwargs):
        self.prompts.append(messages)
        yield from super()._stream(messages, *args, **kwargs)


def _qa(seed_index, embeddings, replies):
    llm = RecordingFake(messages=iter([AIMessage(content=r) for r in replies]), prompts=[])
    return QA(Retriever(seed_index, embeddings), llm, Verifier(embeddings)), llm


def test_retriever_returns_short_exact_evidence(seed_index, embeddings):
    evidence = Retriever(seed_index, embeddings, max_sentences=4).retrieve(
        "How many Indian soldiers were killed in the suicide bombing?"
    )
    assert 1 <= len(evidence) <= 4
    assert [e.n for e in evidence] == list(range(1, len(evidence) + 1))
    assert sum(len(e.text) for e in evidence) <= 1000  # the default budget
    assert any("40 Indian soldiers" in e.text and e.source == OFF_RAMP for e in evidence)
    for e in evidence:
        assert seed_index.article(e.source)[1][e.start : e.end] == e.text


def test_near_duplicate_sentences_are_shown_once(make_settings, embeddings):
    from rag.indexing import ingest
    from rag.pipeline import open_index_for

    settings = make_settings()
    original = (settings.corpus_dir / OFF_RAMP).read_text()
    # A syndicated copy of the article, lightly edited: same facts, different bytes.
    (settings.corpus_dir / "syndicated-copy.txt").write_text(
        original.replace("killed 40 Indian soldiers", "killed 40 Indian troops")
    )
    index = open_index_for(settings, embeddings, create=True)
    ingest(settings.corpus_dir, index, progress=False)
    evidence = Retriever(index, embeddings).retrieve(
        "How many Indian soldiers were killed in the suicide bombing?"
    )
    bombing = [e for e in evidence if "suicide bombing" in e.text and "killed 40" in e.text]
    assert len(bombing) == 1, [e.text for e in evidence]


def test_off_topic_question_gets_no_evidence_and_no_llm_call(seed_index, embeddings):
    qa, llm = _qa(seed_index, embeddings, ["Paris [1]."])
    answer = qa.ask("What is the capital of France?")
    assert answer.refused and answer.citations == []
    assert llm.prompts == [], "the LLM must not answer from memory"


def test_chain_prompt_holds_numbered_evidence_and_answer_is_cited(seed_index, embeddings):
    qa, llm = _qa(seed_index, embeddings, ["A suicide bombing killed 40 Indian soldiers [1]."])
    answer = qa.ask("How many Indian soldiers were killed in the suicide bombing?")
    prompt = llm.prompts[0][-1].content
    assert "\n[1] " in prompt and "Question: How many Indian soldiers" in prompt
    titles = [line for line in prompt.splitlines() if line.startswith("Article: ")]
    assert titles and len(titles) == len(set(titles)), "each article is named once"
    assert answer.citations and "40 Indian soldiers" in answer.citations[0].quote
    assert answer.answer.endswith("[1].")


def test_stream_yields_tokens_then_answer(seed_index, embeddings):
    qa, _ = _qa(
        seed_index, embeddings, ["Imran Khan announced the release of the captured pilot [1]."]
    )
    parts = list(qa.stream("Who announced that the captured pilot would be released?"))
    tokens, final = parts[:-1], parts[-1]
    assert len(tokens) > 3 and all(isinstance(t, str) for t in tokens)
    assert "".join(tokens).startswith("Imran Khan announced")
    assert isinstance(final, Answer) and "Imran Khan" in final.citations[0].quote


def test_follow_up_is_condensed_with_history(seed_index, embeddings):
    qa, llm = _qa(
        seed_index,
        embeddings,
        ["Why did Pakistan release the captured Indian pilot?", "As a gesture of peace [1]."],
    )
    history = [("Who released the captured pilot?", "Pakistan released the pilot [1].")]
    answer = qa.ask("Why did they do it?", history)
    assert answer.question == "Why did Pakistan release the captured Indian pilot?"
    assert "Who released the captured pilot?" in llm.prompts[0][-1].content
    assert "gesture of peace" in answer.citations[0].quote


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("x" * 100_000, "limit is 2,000"),
        (None, "must be text"),
    ],
)
def test_bad_questions_are_refused_with_a_clear_message(question, message):
    with pytest.raises(QuestionError, match=message):
        clean_question(question)


def test_control_characters_are_stripped():
    assert clean_question("Who\x00 released\x1b the pilot?\u200b") == "Who released the pilot?"


def test_the_model_lock_serves_questions_in_arrival_order():
    """A busy client asking again and again must not jump ahead of one already waiting (a
    plain `threading.Lock` lets the releasing thread take it straight back)."""
    import threading
    import time

    from rag.chain import FairLock

    lock, order = FairLock(), []
    waiting = threading.Event()

    def busy() -> None:
        for _ in range(200):
            with lock:
                order.append("busy")
                if len(order) == 1:
                    waiting.wait(5)
                    time.sleep(0.05)  # the other client is now blocked on the lock

    def other() -> None:
        waiting.set()
        with lock:
            order.append("other")

    threads = [threading.Thread(target=busy), threading.Thread(target=other)]
    threads[0].start()
    while not order:
        time.sleep(0.001)
    threads[1].start()
    for t in threads:
        t.join(timeout=30)
    assert order.index("other") <= 2, order.index("other")
