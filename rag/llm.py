"""Stage 7, LLM: one factory for the three backends (embedded llama.cpp, OpenAI-compatible, Ollama)."""

from __future__ import annotations

import os

from langchain_core.language_models import BaseChatModel

from rag.errors import ModelError, SettingsError
from rag.model_files import ensure_default_model
from rag.settings import Settings


def make_llm(settings: Settings) -> BaseChatModel:
    """Build the chat model named by `settings.llm_backend`; the local default needs no server."""
    backend = settings.llm_backend
    if backend == "llamacpp":
        return _llamacpp(settings)
    if backend == "openai":
        return _openai(settings)
    if backend == "ollama":
        return _ollama(settings)
    raise SettingsError(f"Unknown RAG_LLM_BACKEND {backend!r}: use llamacpp, openai or ollama.")


def _llamacpp(settings: Settings) -> BaseChatModel:
    try:
        from llama_cpp import Llama
    except ImportError as exc:  # pragma: no cover - install problem
        raise ModelError(
            "llama-cpp-python is not installed. Run scripts/setup.sh, which builds it with "
            "the CPU flags this machine needs."
        ) from exc
    from rag.llamacpp_chat import LlamaCppChat

    path = settings.llm_model_path or ensure_default_model(settings.model_cache_dir)
    if not path.is_file():
        raise ModelError(
            f"No GGUF model at {path}. Fix RAG_LLM_MODEL_PATH or unset it for the default."
        )
    try:
        client = Llama(
            model_path=str(path),
            n_ctx=settings.llm_context,
            n_batch=512,
            n_threads=settings.llm_threads or max(1, os.cpu_count() or 1),
            seed=0,
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"Could not load the GGUF model at {path}: {exc}") from exc
    return LlamaCppChat(
        client=client, max_tokens=settings.llm_max_tokens, temperature=settings.llm_temperature
    )


def _openai(settings: Settings) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    if not settings.openai_base_url and not settings.openai_api_key:
        raise SettingsError(
            "RAG_LLM_BACKEND=openai needs RAG_OPENAI_BASE_URL (an OpenAI-compatible server) "
            "and/or RAG_OPENAI_API_KEY."
        )
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
    return ChatOpenAI(
        base_url=settings.openai_base_url,
        model=settings.openai_model,
        api_key=key,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens,
        streaming=True,
    )


def _ollama(settings: Settings) -> BaseChatModel:
    from langchain_ollama import ChatOllama

    return ChatOllama(
        base_url=settings.ollama_base_url,
        model=settings.ollama_model,
        temperature=settings.llm_temperature,
        num_predict=settings.llm_max_tokens,
    )
