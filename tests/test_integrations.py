"""The ways in for other tools, each with its real client against a real `rag serve` (and
`rag mcp`) with the real LLM: the `openai` SDK on /v1, the `mcp` SDK's client over streamable
HTTP and stdio, and every example of docs/integrations.md run as written."""

from __future__ import annotations

import asyncio
import sys

import httpx
import pytest

from tests.conftest import OFF_RAMP
from tests.server_fixtures import ROOT, ingested_store, ready_server, server_env
from tests.test_langchain import python_block

pytestmark = [pytest.mark.e2e, pytest.mark.models]

TOKEN = "integrations-token-7d21"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUESTION = "How many Indian soldiers were killed in the suicide bombing?"
OFF_TOPIC = "Who won the 2022 FIFA World Cup?"  # no evidence: refused without the LLM
DOCS = ROOT / "docs" / "integrations.md"
RATE = 12  # per client per minute, all ways in together


@pytest.fixture(scope="module")
def server():
    with ready_server(
        store_dir=str(ingested_store()), api_token=TOKEN, rate_limit_per_minute=str(RATE)
    ) as srv:
        yield srv


def example(marker: str, server) -> str:
    """A docs/integrations.md example with the test server's address and token."""
    code = python_block(DOCS, marker)
    return code.replace("http://127.0.0.1:7860", server.url).replace("YOUR-RAG-API-TOKEN", TOKEN)


def cited(answer: dict) -> None:
    assert not answer["refused"] and "[1]" in answer["answer"], answer
    assert OFF_RAMP in {c["source"] for c in answer["citations"]}
    article = (ROOT / "corpus" / OFF_RAMP).read_text(encoding="utf-8")
    for c in answer["citations"]:
        if c["source"] == OFF_RAMP:
            assert article[c["start"] : c["end"]] == c["quote"]


# ---- OpenAI-compatible --------------------------------------------------------------------


def test_the_openai_sdk_gets_a_cited_answer(server):
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0, timeout=300)
    assert [m.id for m in client.models.list()] == ["news-archive"]
    reply = client.chat.completions.create(
        model="news-archive", messages=[{"role": "user", "content": QUESTION}]
    )
    content = reply.choices[0].message.content
    answer = reply.model_extra["rag"]
    cited(answer)
    assert reply.model_extra["citations"] == answer["citations"]
    assert content.startswith(answer["answer"]) and "\n\nSources:\n  [1] " in content

    # A follow-up, with the conversation (our sources list included) as history.
    follow = client.chat.completions.create(
        model="news-archive",
        messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": content},
            {"role": "user", "content": "Where did the bombing happen?"},
        ],
    )
    assert "kashmir" in follow.model_extra["rag"]["answer"].lower()


def test_the_openai_stream_carries_only_the_verified_answer(server):
    from openai import OpenAI

    client = OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0, timeout=300)
    chunks = list(
        client.chat.completions.create(
            model="news-archive",
            messages=[{"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
            stream=True,
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    answer = last.model_extra["rag"]
    cited(answer)
    assert last.model_extra["citations"] == answer["citations"]
    assert text.startswith(answer["answer"] + "\n\nSources:")


def test_filters_reach_the_search_through_v1_and_mcp(server):
    """The seed articles are undated, at the corpus root: these filters admit none of them, so
    the answer is a refusal with no passage of theirs (no model call)."""
    import openai

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0, timeout=60)
    messages = [{"role": "user", "content": QUESTION}]
    for filters in ({"folder": "elsewhere"}, {"date_from": "2019-01-01"}):
        reply = client.chat.completions.create(
            model="news-archive", messages=messages, extra_body={"filters": filters}
        )
        rag = reply.model_extra["rag"]
        assert rag["refused"] and rag["closest"] == [], rag
    with pytest.raises(openai.UnprocessableEntityError, match="Unknown filter"):
        client.chat.completions.create(
            model="m", messages=messages, extra_body={"filters": {"colour": "red"}}
        )

    async def over_mcp() -> None:
        async with mcp_http_client(server, AUTH) as mcp:
            result = await mcp.call_tool("ask", {"question": QUESTION, "folder": ["elsewhere"]})
            assert not result.is_error and result.structured_content["closest"] == []
            bad = await mcp.call_tool("ask", {"question": QUESTION, "date_from": "yesterday"})
            assert bad.is_error and "date_from" in bad.content[0].text

    asyncio.run(over_mcp())


def test_the_openai_api_has_the_same_guards(server):
    import openai

    for key in ("wrong-token", ""):
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key or "x", max_retries=0)
        with pytest.raises(openai.AuthenticationError, match="API token"):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "?"}])
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError, match="last message must be the user"):
        client.chat.completions.create(
            model="m", messages=[{"role": "assistant", "content": "Hello."}]
        )
    evil = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": QUESTION}]},
        headers={**AUTH, "Origin": "https://evil.example"},
    )
    assert evil.status_code == 403
    big = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=b'{"messages": [' + b" " * (1100 * 1024) + b"]}",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert big.status_code == 413


# ---- MCP ----------------------------------------------------------------------------------


def mcp_http_client(server, headers: dict[str, str]):
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers=headers, timeout=300)
    return Client(streamable_http_client(f"{server.url}/mcp", http_client=http))


async def test_the_mcp_client_gets_passages_and_a_cited_answer_over_http(server):
    async with mcp_http_client(server, AUTH) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert tools == {"search_articles", "ask"}
        found = await client.call_tool("search_articles", {"query": QUESTION, "k": 3})
        passages = found.structured_content["passages"]
        assert 1 <= len(passages) <= 3 and passages[0]["source"] == OFF_RAMP
        assert "killed 40 Indian soldiers" in passages[0]["text"]
        result = await client.call_tool("ask", {"question": QUESTION})
        assert not result.is_error, result.content
        cited(result.structured_content)
        empty = await client.call_tool("ask", {"question": "   "})
        assert empty.is_error and "question is empty" in empty.content[0].text


def test_mcp_over_http_needs_the_token_and_an_allowed_origin(server):
    init = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        refused = httpx.post(f"{server.url}/mcp", json=init, headers=headers)
        assert refused.status_code == 401 and "API token" in refused.json()["error"]
    evil = httpx.post(f"{server.url}/mcp", json=init, headers={**AUTH, "Origin": "https://x.io"})
    assert evil.status_code == 403

    async def listed_without_token() -> None:
        async with mcp_http_client(server, {}) as client:
            await client.list_tools()

    with pytest.raises(Exception):  # noqa: B017  the SDK raises its own transport errors
        asyncio.run(listed_without_token())


async def test_rag_mcp_over_stdio_gives_a_cited_answer():
    from mcp import Client, StdioServerParameters

    env = server_env(store_dir=str(ingested_store()))
    params = StdioServerParameters(command=sys.executable, args=["-m", "rag.cli", "mcp"], env=env)
    async with Client(params, read_timeout_seconds=600) as client:
        assert {t.name for t in (await client.list_tools()).tools} == {"search_articles", "ask"}
        result = await client.call_tool("ask", {"question": QUESTION})
        assert not result.is_error, result.content
        cited(result.structured_content)


# ---- every example of docs/integrations.md, as written --------------------------------------


@pytest.mark.parametrize(
    "marker", ["openai-example", "openai-stream-example", "mcp-http-example", "gradio-example"]
)
def test_the_documented_examples_run(marker, server, capsys):
    namespace: dict = {}
    exec(example(marker, server), namespace)
    printed = capsys.readouterr().out
    assert OFF_RAMP in printed or "india-pakistan" in printed, printed


def test_the_documented_stdio_example_runs(tmp_path, monkeypatch, capsys):
    """`rag` on the PATH, run in a folder whose .env holds the settings, as the docs say."""
    (tmp_path / ".env").write_text(f"RAG_STORE_DIR={ingested_store()}\n")
    (tmp_path / "bin").mkdir()
    rag = tmp_path / "bin" / "rag"  # this checkout's `rag`
    rag.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m rag.cli "$@"\n')
    rag.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{server_env()['PATH']}")
    monkeypatch.chdir(tmp_path)
    exec(python_block(DOCS, "mcp-stdio-example"), {})
    printed = capsys.readouterr().out
    assert OFF_RAMP in printed and "[1]" in printed, printed


def test_the_rate_limit_counts_every_way_in_together(server):
    """Last in this module: it spends the minute's allowance of this client."""
    from openai import OpenAI, RateLimitError

    client = OpenAI(base_url=f"{server.url}/v1", api_key=TOKEN, max_retries=0, timeout=300)
    with pytest.raises(RateLimitError):
        for _ in range(RATE + 1):  # refused without the LLM: no evidence
            client.chat.completions.create(
                model="news-archive", messages=[{"role": "user", "content": OFF_TOPIC}]
            )
    limited = httpx.post(f"{server.url}/api/ask", json={"question": OFF_TOPIC}, headers=AUTH)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0

    async def ask_over_mcp():
        async with mcp_http_client(server, AUTH) as mcp:
            return await mcp.call_tool("ask", {"question": OFF_TOPIC})

    result = asyncio.run(ask_over_mcp())
    assert result.is_error and "Too many questions" in result.content[0].text
