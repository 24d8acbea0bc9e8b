"""Stage 7, LLM: one factory for the three backends, one module each.

- `llamacpp` (default): the packaged Qwen2.5-Coder-1.5B (or any GGUF) embedded with llama.cpp;
- `openai`: any OpenAI-compatible server; `ollama`: an Ollama server.
Each backend module is imported only when chosen.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from rag.errors import SettingsError
from rag.llm.base import PromptCache
from rag.settings import Settings

__all__ = ["PromptCache", "make_llm"]


def make_llm(settings: Settings) -> BaseChatModel:
    """Build the chat model named by `settings.llm_backend`; the local default needs no server."""
    backend = settings.llm_backend
    if backend == "llamacpp":
        from rag.llm.llamacpp import make_llamacpp

        return make_llamacpp(settings)
    if backend == "openai":
        from rag.llm.openai import make_openai

        return make_openai(settings)
    if backend == "ollama":
        from rag.llm.ollama import make_ollama

        return make_ollama(settings)
    raise SettingsError(f"Unknown RAG_LLM_BACKEND {backend!r}: use llamacpp, openai or ollama.")
