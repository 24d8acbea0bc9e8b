"""Stage 7, LLM: one factory for the three backends (embedded llama.cpp, OpenAI-compatible, Ollama)."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.outputs import ChatGenerationChunk, ChatResult

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


class _ExplainedErrors:
    """Mixin for server-backed chat models: a connection or HTTP error from the server becomes a
    ModelError that names the server and the setting to fix (and never the API key)."""

    def _explain(self, exc: Exception) -> str | None:
        """The message for an error this backend knows, else None (the error passes as is)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def _explained(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            message = self._explain(exc)
            if message is None:
                raise
            raise ModelError(message) from exc

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        with self._explained():
            return super()._generate(*args, **kwargs)  # type: ignore[misc]

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        with self._explained():
            yield from super()._stream(*args, **kwargs)  # type: ignore[misc]

    async def _agenerate(self, *args: Any, **kwargs: Any) -> ChatResult:
        with self._explained():
            return await super()._agenerate(*args, **kwargs)  # type: ignore[misc]

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        with self._explained():
            async for chunk in super()._astream(*args, **kwargs):  # type: ignore[misc]
                yield chunk


@functools.cache
def _openai_class() -> type[BaseChatModel]:
    """ChatOpenAI with clear errors (imported on first use: langchain_openai takes ~1.5 s)."""
    from langchain_openai import ChatOpenAI

    class ServerChatOpenAI(_ExplainedErrors, ChatOpenAI):
        """ChatOpenAI for an OpenAI-compatible server (vLLM, llama.cpp, OpenAI) with clear errors."""

        def _explain(self, exc: Exception) -> str | None:
            import openai

            url = self.openai_api_base or "https://api.openai.com/v1"
            if isinstance(exc, openai.APIConnectionError):
                return (
                    f"Cannot reach the LLM server at {url} ({exc}). Start it, or fix "
                    "RAG_OPENAI_BASE_URL (it ends in /v1)."
                )
            if not isinstance(exc, openai.APIStatusError):
                return None
            status = exc.status_code
            if status in (401, 403):
                return (
                    f"The LLM server at {url} refused the API key (HTTP {status}). Set "
                    "RAG_OPENAI_API_KEY in .env to the key the server expects."
                )
            if status == 404:
                return (
                    f"The LLM server at {url} has no model {self.model_name!r} (HTTP 404). Set "
                    f"RAG_OPENAI_MODEL to a model it serves ({url}/models lists them) and check "
                    "that RAG_OPENAI_BASE_URL ends in /v1."
                )
            return f"The LLM server at {url} failed (HTTP {status}): {str(exc.message)[:300]}"

    return ServerChatOpenAI


def _openai(settings: Settings) -> BaseChatModel:
    if not settings.openai_base_url and not settings.openai_api_key:
        raise SettingsError(
            "RAG_LLM_BACKEND=openai needs RAG_OPENAI_BASE_URL (an OpenAI-compatible server) "
            "and/or RAG_OPENAI_API_KEY."
        )
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
    return _openai_class()(
        base_url=settings.openai_base_url,
        model=settings.openai_model,
        api_key=key,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens,
        streaming=True,
    )


@functools.cache
def _ollama_class() -> type[BaseChatModel]:
    """ChatOllama with clear errors (imported on first use)."""
    from langchain_ollama import ChatOllama

    class ServerChatOllama(_ExplainedErrors, ChatOllama):
        """ChatOllama with errors that say what to fix."""

        def _explain(self, exc: Exception) -> str | None:
            import httpx
            import ollama

            url = self.base_url
            if isinstance(exc, ConnectionError | httpx.TransportError):
                return (
                    f"Cannot reach Ollama at {url}. Start it (`ollama serve`) or fix "
                    "RAG_OLLAMA_BASE_URL."
                )
            if isinstance(exc, ollama.ResponseError) and exc.status_code == 404:
                return (
                    f"Ollama at {url} has no model {self.model!r} (HTTP 404). Run "
                    f"`ollama pull {self.model}` there, or fix RAG_OLLAMA_MODEL / "
                    "RAG_OLLAMA_BASE_URL."
                )
            return None

    return ServerChatOllama


def _ollama(settings: Settings) -> BaseChatModel:
    return _ollama_class()(
        base_url=settings.ollama_base_url,
        model=settings.ollama_model,
        temperature=settings.llm_temperature,
        num_predict=settings.llm_max_tokens,
    )
