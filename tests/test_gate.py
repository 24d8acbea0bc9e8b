"""ui.gate and the error masking, in-process with a stand-in QA (plumbing; the gate in a real
server is tested in test_attacks.py, test_api_hardening.py and test_server.py)."""

from __future__ import annotations

import logging
import threading

import gradio as gr
import pytest

from rag.errors import AuthError, BusyError, ModelError, QuestionError, RateLimitError
from rag.schema import Answer, Token
from rag.settings import Settings
from ui.chat import ChatHandlers, masked
from ui.gate import Gate, page_ticket
from ui.loader import Loader
from ui.redaction import redact
from ui.service import ChatService, Waiting

TOKEN = "gate-token-0123456789"


class _HeldQA:
    """A QA stand-in whose answers wait until `go` is set."""

    def __init__(self, fail: bool = False) -> None:
        self.go = threading.Event()
        self.fail = fail

    def stream(self, query):
        self.go.wait(30)
        if self.fail:
            raise RuntimeError("segfault-ish detail at 0xdeadbeef")
        yield Token("tok")
        yield Answer(answer=f"done: {query.question}")


def _service(qa=None, **settings) -> ChatService:
    s = Settings(**settings)
    return ChatService(s, Loader(s, qa=qa or _HeldQA()))


def test_the_gate_checks_token_or_ticket_then_question_rate_and_room():
    service = _service(api_token=TOKEN, queue_limit=2, rate_limit_per_minute=2)
    gate = service.gate
    auth = f"Bearer {TOKEN}"
    with pytest.raises(AuthError, match="Bearer"):
        gate.admit("api", client="a", question="Who?")
    with pytest.raises(AuthError, match="not an API"):
        gate.admit("page", client="a", question="Who?", authorization=auth)  # a token is no ticket
    with pytest.raises(QuestionError):
        gate.admit("api", client="a", question="  ", authorization=auth)
    first = gate.admit("api", client="a", question="one?", authorization=auth)
    second = gate.admit("page", client="b", question="two?", ticket=gate.ticket)
    assert (gate.waiting, gate.ahead(first), gate.ahead(second), gate.has_room()) == (
        2,
        0,
        1,
        False,
    )
    with pytest.raises(BusyError, match="2 questions are already waiting"):  # one limit for both
        gate.admit("page", client="c", question="three?", ticket=gate.ticket)
    gate.release(first)
    gate.release(first)  # again: harmless
    assert (gate.waiting, gate.ahead(second)) == (1, 0)
    gate.admit("api", client="a", question="four?", authorization=auth)
    with pytest.raises(RateLimitError):  # client "a": 2 questions this minute
        gate.admit("api", client="a", question="five?", authorization=auth)


def test_the_page_ticket_is_stable_and_needs_the_token_to_compute():
    one = page_ticket(Settings(api_token=TOKEN))
    assert one == page_ticket(Settings(api_token=TOKEN))  # the same after a restart
    assert one != page_ticket(Settings(api_token=TOKEN + "x")) and TOKEN not in one
    assert Gate(Settings(), Loader(Settings(), qa=_HeldQA())).ticket == page_ticket(Settings())


def test_a_waiting_reader_sees_their_place_then_the_answer():
    qa = _HeldQA()
    service = _service(qa, queue_limit=3)
    ahead = [service.admit("api", client=f"c{i}", question=f"q{i}?") for i in range(2)]
    mine = service.admit("page", client="me", question="mine?", ticket=service.gate.ticket)
    streams = [service.stream(a) for a in ahead]
    seen: list = []
    reader = threading.Thread(target=lambda: seen.extend(service.stream_with_places(mine)))
    reader.start()
    while not seen:
        reader.join(0.2)
    assert seen[0] == Waiting(2), seen
    qa.go.set()
    reader.join(30)
    assert seen[-1].answer == "done: mine?" and isinstance(seen[-2], Token)
    assert [list(s)[-1].answer for s in streams] == ["done: q0?", "done: q1?"]
    assert service.gate.waiting == 0  # every place freed


def test_an_unexpected_failure_shows_a_request_id_not_the_exception(caplog):
    qa = _HeldQA(fail=True)
    qa.go.set()
    service = _service(qa)
    admission = service.admit("api", client="a", question="Who?")
    with caplog.at_level(logging.ERROR), pytest.raises(ModelError) as info:
        service.ask(admission)
    message = str(info.value)
    assert admission.request_id in message and "0xdeadbeef" not in message
    assert "RuntimeError" not in message
    assert admission.request_id in caplog.text and "0xdeadbeef" in caplog.text  # the log has it
    assert service.gate.waiting == 0


def test_page_callbacks_mask_unexpected_errors(caplog):
    handlers = ChatHandlers(_service())

    class Odd:
        _data = ["not", "a", "dict"]  # what a hand-made call may send

    assert "earlier chat" in handlers.open_citation([], Odd())  # type: ignore[arg-type]

    @masked
    def broken(x):
        raise KeyError("internal-detail")

    @masked
    def broken_stream(x):
        yield 1
        raise ValueError("internal-detail")

    with caplog.at_level(logging.ERROR):
        for call in (lambda: broken(1), lambda: list(broken_stream(1))):
            with pytest.raises(gr.Error) as info:
                call()
            assert "request id" in info.value.message and "internal" not in info.value.message
    assert (
        "KeyError: 'internal-detail'" in caplog.text
        and "ValueError: internal-detail" in caplog.text
    )


def test_short_secrets_are_masked_too():
    assert redact("token abc and abcdef", ["abc", "abcdef"]) == "token *** and ***"
    assert redact("nothing", [""]) == "nothing"
