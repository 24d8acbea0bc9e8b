"""Load on a real `rag serve` with the real default LLM: 20 clients x 10 questions (bench/load.py),
half through POST /api/ask and half through the Gradio queue. Every request is answered or
cleanly rejected, nothing crashes, memory stays bounded; two conversations never mix.

The server runs with a small queue (3), a rate limit that does not bite (1000/min) and short
answers (RAG_LLM_MAX_TOKENS=48), so the run ends in a few minutes on two cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import httpx
import pytest

from rag.schema import Answer
from tests.conftest import MEDIATION, OFF_RAMP
from tests.server_fixtures import ROOT, ingested_store, ready_server

pytestmark = pytest.mark.e2e

CLIENTS, QUESTIONS = 20, 10
RSS_GROWTH_MB = 300  # answers, sessions and queues may take this much beyond a warm server

# Two users whose follow-up questions only make sense with their own history.
CONVERSATIONS = {
    "pilot": (
        [("Who is Pakistan's Prime Minister?", "Imran Khan is Pakistan's Prime Minister [1].")],
        "What did he announce about the captured pilot?",
        ("Khan", "pilot"),
        OFF_RAMP,
    ),
    "saarc": (
        [
            (
                "Which regional organisation has tried to promote dialogue between India and "
                "Pakistan?",
                "The South Asian Association for Regional Cooperation (SAARC) has tried to "
                "promote dialogue [1].",
            )
        ],
        "What has hampered its efforts?",
        ("SAARC",),
        MEDIATION,
    ),
}


@pytest.fixture(scope="module")
def server():
    with ready_server(
        store_dir=str(ingested_store()),
        queue_limit="4",  # one queue for the API and the page: the 4 conversations fit
        rate_limit_per_minute="1000",
        llm_max_tokens="48",
    ) as srv:
        yield srv


def test_twenty_clients_are_answered_or_cleanly_rejected(server, tmp_path):
    out = tmp_path / "load.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "load.py"),
            *("--url", server.url, "--pid", str(server.proc.pid)),
            *("--clients", str(CLIENTS), "--questions", str(QUESTIONS), "--interval", "2"),
            *("--json", str(out)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    f = json.loads(out.read_text())
    assert f["requests"] == CLIENTS * QUESTIONS
    assert f["all"]["error"] == 0, f["errors"]
    assert f["all"]["answered"] + f["all"]["rejected"] == CLIENTS * QUESTIONS
    # Answers were given under the load. Which way in wins a freed place is a race: the Gradio
    # way reaches the gate a few hundred ms later than the REST way while the model holds both
    # cores, so at saturation it may get none (both ways answering at once is checked by
    # test_two_conversations_never_mix; the race is noted in docs/reliability.md).
    assert f["all"]["answered"] >= 1, f
    assert f["api"]["rejected"] >= 1, f  # the queue limit was reached: the test put real load

    # Nothing crashed: the same process still answers, and logged no unhandled exception.
    assert f["server_alive"] and server.proc.poll() is None
    assert httpx.get(f"{server.url}/healthz", timeout=10).json()["status"] == "ready"
    log = server.log(10**8)
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]

    rss = f["rss_mb"]
    assert rss["peak"] - rss["before"] < RSS_GROWTH_MB, rss
    assert rss["after"] - rss["before"] < RSS_GROWTH_MB, rss


def test_two_conversations_never_mix(server):
    """Both users ask at once, each through the API and through Gradio: every answer answers
    its own user's follow-up, from its own history."""
    from gradio_client import Client

    gradio = Client(server.url + "/", verbose=False)
    answers: dict[tuple[str, str], Answer] = {}

    def ask(name: str, via: str) -> None:
        history, question, _, _ = CONVERSATIONS[name]
        if via == "api":
            body = {"question": question, "history": [list(turn) for turn in history]}
            r = httpx.post(f"{server.url}/api/ask", json=body, timeout=600)
            assert r.status_code == 200, r.text
            result = r.json()
        else:
            result = gradio.predict(question, [list(t) for t in history], api_name="/ask")
        answers[(name, via)] = Answer.model_validate(result)

    threads = [
        threading.Thread(target=ask, args=(name, via))
        for via in ("api", "gradio")
        for name in CONVERSATIONS
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    gradio.close()
    assert len(answers) == 4, answers
    for (name, via), answer in answers.items():
        _, _, own_words, source = CONVERSATIONS[name]
        other = next(words for n, (_, _, words, _) in CONVERSATIONS.items() if n != name)
        text = f"{answer.question} {answer.answer}"
        assert all(word in text for word in own_words), (name, via, text)
        assert not any(word in text for word in other), (name, via, text)
        assert {c.source for c in answer.citations} == {source}, (name, via, answer)
