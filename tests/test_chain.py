"""Stage 10, the chain: one path (events) for every caller, with fake chat models; the real
LLM's behaviour is in test_e2e.py."""

from __future__ import annotations

import pytest

from rag.chain import QA, last_answer
from rag.citations import Verifier
from rag.errors import QuestionError
from rag.questions import Query, clean_history, clean_question
from rag.retrieval import Retriever
from rag.schema import Answer, Evidence, Retry, Sentence, Token
from tests.conftest import OFF_RAMP, FakeEmbeddings, fake_chat


def _qa(seed_index, embeddings, replies):
    llm = fake_chat(*replies)
    return QA(Retriever(seed_index, embeddings), llm, Verifier(embeddings)), llm


EVIDENCE = [Evidence(1, "a.txt", "A", 0, 10, "Forty soldiers were killed.", 0.9)]


def _plumbing_qa(*replies: str, evidence=EVIDENCE):
    llm = fake_chat(*replies)
    asked: list[str] = []

    def retriever(question: str) -> list[Evidence]:
        asked.append(question)
        return evidence

    return QA(retriever, llm, Verifier(FakeEmbeddings(), 0.0)), llm, asked


def test_stream_yields_tokens_then_one_answer_and_ask_is_its_last_event():
    reply = "Forty soldiers died [1]. The dead were all soldiers [1]."
    qa, _, _ = _plumbing_qa(reply, reply)
    events = list(qa.stream("How many died?"))
    tokens = [e for e in events if isinstance(e, Token)]
    shown = [e for e in events if isinstance(e, Sentence)]
    assert len(tokens) > 3 and "".join(t.text for t in tokens) == reply
    assert isinstance(events[-1], Answer) and events[-1].citations
    assert [s.text for s in shown] == [
        "Forty soldiers died [1].",
        "The dead were all soldiers [1].",
    ]
    assert " ".join(s.text for s in shown) == events[-1].answer
    # each sentence is shown as soon as the next one starts, before the reply is complete
    first = events.index(shown[0])
    assert any(isinstance(e, Token) and "dead" in e.text for e in events[first + 1 :])
    assert qa.ask("How many died?") == last_answer(iter(events))


def test_a_refusal_despite_strong_evidence_is_retried_once_with_a_retry_event():
    qa, llm, _ = _plumbing_qa(
        "The articles don't answer this question.", "Forty soldiers died [1]."
    )
    events = list(qa.stream("How many died?"))
    retries = [i for i, e in enumerate(events) if isinstance(e, Retry)]
    assert len(retries) == 1 and isinstance(events[-1], Answer)
    after = [e for e in events[retries[0] + 1 : -1] if isinstance(e, Token)]
    assert "".join(e.text for e in after) == "Forty soldiers died [1]."
    assert events[-1].answer == "Forty soldiers died [1]." and len(llm.prompts) == 2


def test_no_evidence_means_a_refusal_without_asking_the_model():
    qa, llm, _ = _plumbing_qa("Paris [1].", evidence=[])
    events = list(qa.stream("What is the capital of France?"))
    assert len(events) == 1 and events[0].refused and llm.prompts == []


def test_a_follow_up_is_rewritten_with_the_history_before_retrieval():
    qa, llm, asked = _plumbing_qa("Why did Pakistan release the pilot?", "As a gesture [1].")
    answer = qa.ask("Why?", [("Who released the pilot?", "Pakistan did [1].")])
    assert asked == ["Why did Pakistan release the pilot?"] == [answer.question]
    assert "Who released the pilot?" in llm.prompts[0][-1].content


def test_a_rewrite_that_is_not_a_question_keeps_the_users_words():
    qa, _, asked = _plumbing_qa("Pakistan released him as a gesture.", "Yes [1].")
    qa.ask("Why did they do it?", [("Who released the pilot?", "Pakistan did [1].")])
    assert asked == ["Why did they do it?"]


def test_a_bad_question_fails_before_the_stream_starts():
    qa, llm, _ = _plumbing_qa("x")
    with pytest.raises(QuestionError, match="empty"):
        qa.stream("   ")
    with pytest.raises(QuestionError, match="pairs"):
        qa.stream("Why?", history="not a list")
    assert llm.prompts == []


def test_a_query_is_checked_once_and_passed_as_is():
    query = Query.parse("  Who  released\x00 the pilot? ", [["q", "a"]])
    assert query == Query("Who released the pilot?", [("q", "a")])
    qa, _, _ = _plumbing_qa("x")
    assert qa.query(query) is query


def test_history_pairs_and_messages_give_the_same_turns_cut_to_three():
    pairs = [[f"q{i}", f"a{i}"] for i in range(5)]
    messages = [m for i in range(5) for m in ({"role": "user", "content": f"q{i}"},
                                            {"role": "assistant", "content": f"a{i}"})]  # fmt: skip
    assert (
        clean_history(pairs) == clean_history(messages) == [(f"q{i}", f"a{i}") for i in (2, 3, 4)]
    )
    assert clean_history([*messages, {"role": "user", "content": "now"}])[-1] == ("q4", "a4")
    assert clean_history([["q", "a" * 5000]])[0][1] == "a" * 1000
    for bad in ("text", [["only"]], [[1, 2]], [{"role": "bot", "content": "x"}],
                [{"role": "user"}], [["q", "a"], {"role": "user", "content": "q"}]):  # fmt: skip
        with pytest.raises(QuestionError):
            clean_history(bad)


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
    tokens, final = [p for p in parts if isinstance(p, Token)], parts[-1]
    sentences = [p for p in parts if isinstance(p, Sentence)]
    assert len(tokens) > 3 and len(tokens) + len(sentences) == len(parts) - 1
    assert [s.text for s in sentences] == [final.answer]  # shown once checked
    assert "".join(t.text for t in tokens).startswith("Imran Khan announced")
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
