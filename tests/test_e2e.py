"""End to end with the real embedding model, a real Chroma store and the real default LLM."""

from __future__ import annotations

import json

import pytest

from rag.indexing import ingest
from rag.pipeline import build_qa, open_index_for
from rag.prompts import REFUSAL
from rag.schema import Sentence, Token
from tests.conftest import MEDIATION, OFF_RAMP, run_rag

pytestmark = pytest.mark.e2e

# (question, expected source article, any of these key facts must be in the answer)
ANSWERABLE = [
    ("How many Indian soldiers were killed in the suicide bombing in Kashmir?", OFF_RAMP, ["40"]),
    ("Who announced that the captured Indian pilot would be released?", OFF_RAMP, ["Imran Khan"]),
    (
        "Why did Pakistan release the captured Indian pilot?",
        OFF_RAMP,
        ["gesture of peace", "peace"],
    ),
    ("What did India launch in response to the suicide bombing?", OFF_RAMP, ["airstrike"]),
    ("Which US president urged India and Pakistan to exercise restraint?", OFF_RAMP, ["Trump"]),
    ("Which country offered to mediate between India and Pakistan?", OFF_RAMP, ["China"]),
    ("What happened to an Indian pilot after the dogfight?", OFF_RAMP, ["captur"]),
    ("In which year were India and Pakistan partitioned?", MEDIATION, ["1947"]),
    ("In which year was the Kargil conflict?", MEDIATION, ["1999"]),
    ("What does SAARC stand for?", MEDIATION, ["South Asian Association for Regional Cooperation"]),
    ("What is the main point of contention between India and Pakistan?", MEDIATION, ["Kashmir"]),
    ("Who facilitates communication in backchannel diplomacy?", MEDIATION, ["intermediar"]),
    (
        "What has hampered the effectiveness of SAARC?",
        MEDIATION,
        ["political tension", "lack of trust"],
    ),
    (
        "What do backchannels offer that formal diplomacy often lacks?",
        MEDIATION,
        ["flexibility", "confidentiality"],
    ),
    ("Which country has growing economic and military ties with Pakistan?", MEDIATION, ["China"]),
]

UNANSWERABLE = [
    "What is the name of the captured Indian pilot?",  # never named: the model invents one
    "What is the capital of France?",
    "Who won the football World Cup in 2018?",
]


@pytest.mark.parametrize(
    ("question", "source", "facts"), ANSWERABLE, ids=[q for q, _, _ in ANSWERABLE]
)
def test_answers_cite_the_right_article_and_fact(qa, question, source, facts):
    answer = qa.ask(question)
    assert not answer.refused, f"refused: {answer.removed}"
    assert any(f.lower() in answer.answer.lower() for f in facts), answer.answer
    assert source in {c.source for c in answer.citations}, (answer.answer, answer.citations)
    assert "[1]" in answer.answer
    for c in answer.citations:
        title, text = qa.retriever.index.article(c.source)
        assert text[c.start : c.end] == c.quote and c.title == title


@pytest.mark.parametrize("question", UNANSWERABLE)
def test_unanswerable_questions_are_refused(qa, question):
    answer = qa.ask(question)
    assert answer.refused and answer.answer == REFUSAL and answer.citations == []
    if "pilot" in question:  # the articles do talk about the pilot: show where
        assert any("pilot" in c.quote for c in answer.closest), answer.closest
    for c in answer.closest:  # shown so the reader can check; real spans of real articles
        assert qa.retriever.index.article(c.source)[1][c.start : c.end] == c.quote


def test_streaming_with_the_real_model(qa):
    parts = list(qa.stream("Who announced that the captured Indian pilot would be released?"))
    tokens = [p for p in parts[:-1] if isinstance(p, Token)]
    sentences = [p for p in parts[:-1] if isinstance(p, Sentence)]
    assert len(tokens) > 3 and sentences and len(tokens) + len(sentences) <= len(parts) - 1
    assert "Imran Khan" in parts[-1].answer
    assert " ".join(s.text for s in sentences) == parts[-1].answer  # each shown once checked


@pytest.fixture
def reads(qa, monkeypatch) -> list[int]:
    """The sizes of the token batches llama.cpp reads: a prompt's new part, then 1 per token."""
    read: list[int] = []
    inner = qa.llm.client.eval
    monkeypatch.setattr(
        qa.llm.client, "eval", lambda tokens: (read.append(len(tokens)), inner(tokens))
    )
    return read


def test_warming_reads_the_fixed_prompt_before_the_first_question(qa, reads):
    def first_read(warm: bool) -> int:
        qa.llm.client.reset()  # an empty prompt cache, as after loading the model
        if warm:
            assert qa.warm()
        reads.clear()
        qa.ask("What does SAARC stand for?")
        return reads[0]

    cold, warm = first_read(False), first_read(True)
    assert warm < cold - 200, (cold, warm)  # instructions and examples: ~280 tokens


def test_a_follow_up_gets_the_warmed_prompt_back_after_its_rewrite(qa, reads):
    first = "Who announced that the captured Indian pilot would be released?"

    def follow_up(put_back: bool) -> tuple[str, int]:
        qa.llm.client.reset()
        assert qa.warm()
        if not put_back:
            qa.llm._warm_state = None  # as before the warm state was kept
        history = [(first, qa.ask(first).answer)]
        reads.clear()
        answer = qa.ask("Why?", history)
        prompts = [n for n in reads if n > 1]  # [0]: the rewrite's prompt, [1]: the answer's
        return answer.answer, prompts[1]

    answer, warm = follow_up(True)
    same, cold = follow_up(False)
    # (the two may differ in wording: a prompt read in other batches rounds differently)
    assert "peace" in answer and "peace" in same
    assert warm < cold - 200, (cold, warm)  # instructions and examples: ~280 tokens


def test_follow_up_question_uses_history(qa):
    first = qa.ask("Who announced that the captured Indian pilot would be released?")
    follow = qa.ask(
        "Why did he release him?",
        [("Who announced that the captured Indian pilot would be released?", first.answer)],
    )
    assert "pilot" in follow.question.lower(), follow.question
    assert not follow.refused and OFF_RAMP in {c.source for c in follow.citations}


def test_reingest_after_edit_and_delete(make_settings, embeddings, llm):
    settings = make_settings()
    index = open_index_for(settings, embeddings, create=True)
    ingest(settings.corpus_dir, index, progress=False)
    qa = build_qa(settings, llm=llm, embeddings=embeddings)
    question = "How many Indian soldiers were killed in the suicide bombing in Kashmir?"
    assert "40" in qa.ask(question).answer

    path = settings.corpus_dir / OFF_RAMP
    path.write_text(
        path.read_text().replace("killed 40 Indian soldiers", "killed 44 Indian soldiers")
    )
    (settings.corpus_dir / MEDIATION).unlink()
    report = ingest(settings.corpus_dir, index, progress=False)
    assert (report.updated, report.removed) == ([OFF_RAMP], [MEDIATION])

    qa = build_qa(settings, llm=llm, embeddings=embeddings)
    edited = qa.ask(question)
    assert "44" in edited.answer and "40" not in edited.answer
    gone = qa.ask("What does SAARC stand for?")
    assert MEDIATION not in {c.source for c in gone.citations}
    assert gone.refused


def test_cli_json_contract(seed_settings, seed_index):
    question = "Which US president urged India and Pakistan to exercise restraint?"
    done = run_rag("ask", "--json", question, env={"RAG_STORE_DIR": str(seed_settings.store_dir)})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    data = json.loads(out)  # exactly one JSON object on stdout, nothing else
    assert {"answer", "citations"} <= set(data)
    assert isinstance(data["answer"], str) and "Trump" in data["answer"]
    for c in data["citations"]:
        assert set(c) >= {"n", "source", "title", "quote", "start", "end"}
        text = (seed_settings.corpus_dir / c["source"]).read_text()
        assert text[c["start"] : c["end"]] == c["quote"]
    assert [c["n"] for c in data["citations"]] == list(range(1, len(data["citations"]) + 1))


def test_cli_interactive_answers_with_citations_and_follow_ups(seed_settings, seed_index):
    questions = "Who announced that the captured Indian pilot would be released?\nWhy?\n\n"
    done = run_rag("ask", env={"RAG_STORE_DIR": str(seed_settings.store_dir)}, stdin=questions)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count("\n? ") == 3  # two questions, then the empty line that quits
    assert "Imran Khan" in out and "[1]" in out
    assert OFF_RAMP in out  # the sources list under each answer


def test_cli_reports_a_missing_index(tmp_path):
    result = run_rag("ask", "--json", "Anything?", env={"RAG_STORE_DIR": str(tmp_path / "none")})
    assert result.returncode == 1
    assert "rag ingest" in json.loads(result.stdout)["error"]
