"""ui.session: the conversation snapshot the chat page keeps in the tab (plain functions; the
restart with a real server and browser is in test_restart.py)."""

from __future__ import annotations

import json

import pytest

from ui.session import (
    LOST_NOTICE,
    MAX_TURNS,
    NOT_ANSWERED,
    RELOADED_NOTICE,
    last_answer,
    parse_snapshot,
    recover,
    restore_page,
    snapshot,
)

ANSWER = {"answer": "40 were killed [1].", "citations": [], "question": "How many?"}


def test_snapshot_round_trip():
    turns = [{"question": "How many?", "answer": ANSWER, "error": None}]
    restored, pending = parse_snapshot(snapshot(turns, "And then?"))
    assert pending == "And then?"
    assert restored[0]["question"] == "How many?" and restored[0]["error"] is None
    assert restored[0]["answer"]["answer"] == ANSWER["answer"]
    assert last_answer(restored)[1] == 0 and last_answer([]) is None
    assert parse_snapshot(snapshot(turns)) == (restored, None)


@pytest.mark.parametrize(
    "raw",
    [None, "", "{", "[]", "5", '"text"', '{"turns": 5}', '{"turns": [1, "x", null]}', b"{}"],
)
def test_malformed_snapshots_restore_nothing(raw):
    assert parse_snapshot(raw) == ([], None)
    assert recover(raw, lost=True) == ([], "")


def test_snapshot_fields_are_checked_and_bounded():
    turns = [{"question": f"q{i}", "answer": ANSWER} for i in range(MAX_TURNS + 20)]
    turns += [
        {"question": 7, "answer": ANSWER},  # not a turn: dropped
        {"question": "bad answer", "answer": {"answer": ["not text"]}},
        {"question": "failed", "answer": None, "error": "x" * 10_000},
        {"question": "y" * 10_000, "answer": None},
    ]
    restored, pending = parse_snapshot(json.dumps({"turns": turns, "pending": ["no"]}))
    assert pending is None
    assert len(restored) == MAX_TURNS - 1  # the last MAX_TURNS entries, less the non-turn
    assert restored[-3]["answer"] is None and "could not be restored" in restored[-3]["error"]
    assert len(restored[-2]["error"]) == 4000 and len(restored[-1]["question"]) == 4000
    assert restored[-1]["error"] == "No answer."


def test_an_interrupted_question_is_marked_not_answered():
    raw = snapshot([{"question": "How many?", "answer": ANSWER, "error": None}], "And then?")
    turns, notice = recover(raw, lost=True)
    assert notice == LOST_NOTICE
    assert turns[-1] == {"question": "And then?", "answer": None, "error": NOT_ANSWERED}
    assert recover(raw, lost=False)[1] == RELOADED_NOTICE
    assert restore_page(json.dumps({"snapshot": raw, "lost": True})) == (turns, LOST_NOTICE)
    assert restore_page("not json") == ([], "")
