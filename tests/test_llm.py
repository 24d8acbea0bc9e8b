"""Stage 7: the LLM factory picks the backend named in settings, with clear errors."""

from __future__ import annotations

import pytest

from rag.errors import ModelError, SettingsError
from rag.llm import make_llm
from rag.settings import Settings


def test_openai_compatible_backend():
    from langchain_openai import ChatOpenAI

    llm = make_llm(
        Settings(
            llm_backend="openai",
            openai_base_url="http://127.0.0.1:9/v1",
            openai_model="local",
            openai_api_key="sk-test",
        )
    )
    assert isinstance(llm, ChatOpenAI)
    assert llm.model_name == "local" and str(llm.openai_api_base) == "http://127.0.0.1:9/v1"
    assert "sk-test" not in repr(llm), "the key must not leak into reprs or logs"


def test_openai_backend_needs_a_url_or_key():
    with pytest.raises(SettingsError, match="RAG_OPENAI_BASE_URL"):
        make_llm(Settings(llm_backend="openai"))


def test_ollama_backend():
    from langchain_ollama import ChatOllama

    llm = make_llm(Settings(llm_backend="ollama", ollama_model="qwen2.5:1.5b"))
    assert isinstance(llm, ChatOllama) and llm.model == "qwen2.5:1.5b"


def test_llamacpp_with_a_missing_file_says_what_to_fix(tmp_path):
    with pytest.raises(ModelError, match="RAG_LLM_MODEL_PATH"):
        make_llm(Settings(llm_model_path=tmp_path / "nope.gguf"))


@pytest.mark.models  # llama.cpp itself reads the file
def test_llamacpp_with_a_bad_file_fails_clearly(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf")
    with pytest.raises(ModelError, match="Could not load"):
        make_llm(Settings(llm_model_path=bad))


def _closed_port() -> int:
    """A localhost port with nothing listening."""
    from tests.server_fixtures import free_port

    return free_port()


@pytest.mark.parametrize("how", ["invoke", "stream"])
def test_openai_backend_without_a_server_says_what_to_fix(how):
    port = _closed_port()
    llm = make_llm(
        Settings(
            llm_backend="openai",
            openai_base_url=f"http://127.0.0.1:{port}/v1",
            openai_api_key="sk-never-shown",
        )
    )
    with pytest.raises(ModelError, match=f"127.0.0.1:{port}/v1.*RAG_OPENAI_BASE_URL") as err:
        llm.invoke("hi") if how == "invoke" else list(llm.stream("hi"))
    assert "sk-never-shown" not in str(err.value)


@pytest.mark.parametrize("how", ["invoke", "stream"])
def test_ollama_backend_without_a_server_says_what_to_fix(how):
    port = _closed_port()
    llm = make_llm(Settings(llm_backend="ollama", ollama_base_url=f"http://127.0.0.1:{port}"))
    with pytest.raises(ModelError, match=f"127.0.0.1:{port}.*RAG_OLLAMA_BASE_URL"):
        llm.invoke("hi") if how == "invoke" else list(llm.stream("hi"))
