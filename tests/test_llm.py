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


def test_llamacpp_with_a_bad_file_fails_clearly(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf")
    with pytest.raises(ModelError, match="Could not load"):
        make_llm(Settings(llm_model_path=bad))
