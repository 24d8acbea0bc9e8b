"""rag.answerability and the streaming cut of replies (plain functions, no model)."""

from __future__ import annotations

import pytest

from rag.answerability import answers
from rag.replies import complete_sentences, split_reply

HOUSE = "The eight-bedroom house could fetch up to £2m when it is auctioned in May."
BRIDGE = "The new bridge, delayed twice, is scheduled to open in the autumn."
CLOSE = "The council announced the library would close in June; the union warned that strikes could follow."
STRIKE = "The strike began in March, and the union said 3,000 workers had walked out."


@pytest.mark.parametrize(
    ("question", "sentence", "passage", "why"),
    [
        ("What did the house sell for?", "The house sold for £2m.", HOUSE, "estimate"),
        ("What did the house sell for?", "It could fetch up to £2m.", HOUSE, "estimate"),
        ("How many workers walked out in 2003?", "3,000 walked out.", STRIKE, "2003"),
        ("How many workers walked out?", "Workers walked out in March.", STRIKE, "figure"),
        ("When did the strike begin?", "The union called the strike.", STRIKE, "time"),
        ("What did Acme pay for the firm?", "It paid £2m.", "Beta paid £2m for it.", "Acme"),
        # a plan's date is not when it happened
        ("When did the new bridge open?", "It opened in the autumn.", BRIDGE, "estimate"),
    ],
)
def test_a_sentence_that_misses_the_questions_target_does_not_answer(
    question, sentence, passage, why
):
    reason = answers(question, sentence, passage, article_text=passage)
    assert reason is not None and why.lower() in reason.lower(), reason


@pytest.mark.parametrize(
    ("question", "sentence", "passage"),
    [
        ("How much could the house fetch?", "It could fetch up to £2m.", HOUSE),
        ("When did the strike begin?", "It began in March.", STRIKE),
        ("How many workers walked out?", "3,000 workers walked out.", STRIKE),
        ("Who called the strike?", "The union called it.", STRIKE),
        ("What did Acme pay for the firm?", "Acme paid £2m.", "Acme paid £2m for it."),
        # the question's first word is not a name; a people's name matches its country's
        ("Whom did the union call out?", "The union called out 3,000 workers.", STRIKE),
        ("Besides March, when did the strike begin?", "It began in March.", STRIKE),
        ("How many Danish workers walked out?", "3,000 walked out.", STRIKE + " In Denmark."),
        # amounts and times without digits
        ("How many workers walked out?", "Thousands of workers walked out.", STRIKE),
        ("When did the strike begin?", "It began in the 1990s.", STRIKE),
        ("When is the new bridge scheduled to open?", "In the autumn.", BRIDGE),
        (
            "When did the old plant close?",
            "It closed last year.",
            "The old plant closed last year, and a new one is expected next year.",
        ),
        ("What did the union's survey find?", "It found strikes could follow.", CLOSE),
        # asked what was said or decided, the plan or promise is the answer
        ("What did the council announce about the library?", "It would close in June.", CLOSE),
        ("What did the union warn?", "It warned that strikes could follow.", CLOSE),
        ("What has the council decided?", "It plans to close the library.", CLOSE),
    ],
)
def test_a_sentence_that_gives_what_is_asked_answers(question, sentence, passage):
    assert answers(question, sentence, passage, article_text=passage) is None


def test_only_finished_sentences_are_cut_from_a_reply_being_written():
    assert complete_sentences("Forty soldiers died") == []
    assert complete_sentences("Forty soldiers died. [1") == []  # the marker may still come
    assert complete_sentences("Forty soldiers died. [1] Pakistan") == ["Forty soldiers died [1]."]
    reply = "Forty soldiers died [1]. Pakistan denied it [2]."
    assert complete_sentences(reply) == ["Forty soldiers died [1]."]
    assert split_reply(reply) == ["Forty soldiers died [1].", "Pakistan denied it [2]."]
