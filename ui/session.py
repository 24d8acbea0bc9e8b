"""A chat page's conversation, kept in the browser tab so that a reload or a server restart
loses nothing: the page saves a snapshot after every change and hands it back on load.

A snapshot comes from the browser, so it is untrusted: it is parsed defensively, and every
piece of it is rendered through the same escaping as a fresh answer.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from rag.schema import Answer

MAX_TURNS = 50  # turns kept in a snapshot; older ones are dropped
MAX_TEXT = 4000  # characters kept of a question or an error message
NOT_ANSWERED = (
    "Not answered: the connection to the server was lost before the answer was complete. "
    "Please ask again."
)
LOST_NOTICE = "**Connection to the server was lost; it is back — please ask again.**"
RELOADED_NOTICE = "**The page was reloaded before the answer arrived — please ask again.**"

Turn = dict  # {"question": str, "answer": Answer JSON dict | None, "error": str | None}


def snapshot(turns: list[Turn], pending: str | None = None) -> str:
    """The conversation as JSON for the browser: its turns and the question being answered."""
    return json.dumps({"turns": turns[-MAX_TURNS:], "pending": pending or None})


def parse_snapshot(raw: object) -> tuple[list[Turn], str | None]:
    """(turns, question in flight) from a snapshot; anything malformed is dropped, never raised."""
    try:
        data = json.loads(raw) if isinstance(raw, str) and raw else {}
    except ValueError:
        return [], None
    if not isinstance(data, dict):
        return [], None
    items = data.get("turns")
    turns = [t for t in map(_turn, items[-MAX_TURNS:]) if t] if isinstance(items, list) else []
    pending = data.get("pending")
    pending = pending[:MAX_TEXT] if isinstance(pending, str) and pending.strip() else None
    return turns, pending


def recover(raw: object, lost: bool) -> tuple[list[Turn], str]:
    """The restored turns, with a question that was in flight marked as not answered, and the
    notice to show ("" when nothing was interrupted). `lost`: the page saw the connection drop.
    """
    turns, pending = parse_snapshot(raw)
    if pending is None:
        return turns, ""
    turns = [*turns, {"question": pending, "answer": None, "error": NOT_ANSWERED}]
    return turns, LOST_NOTICE if lost else RELOADED_NOTICE


def _turn(item: object) -> Turn | None:
    if not isinstance(item, dict) or not isinstance(item.get("question"), str):
        return None
    question = item["question"][:MAX_TEXT]
    answer = item.get("answer")
    error = item.get("error")
    if answer is not None:
        try:
            answer = Answer.model_validate(answer).to_json_dict()
        except ValidationError:
            answer, error = None, "This answer could not be restored."
    if answer is None:
        error = str(error)[:MAX_TEXT] if error else "No answer."
    return {"question": question, "answer": answer, "error": None if answer else error}


def restore_page(payload: object) -> tuple[list[Turn], str]:
    """`recover` for the page's load event: payload is JSON {"snapshot": str, "lost": bool}."""
    try:
        data = json.loads(payload) if isinstance(payload, str) and payload else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    return recover(data.get("snapshot"), data.get("lost") is True)


def last_answer(turns: list[Turn]) -> tuple[Answer, int] | None:
    """The latest answer in the turns and its turn number (for the sources panel), or None."""
    for i in range(len(turns) - 1, -1, -1):
        if turns[i].get("answer"):
            return Answer(**turns[i]["answer"]), i
    return None
