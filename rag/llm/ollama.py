"""Backend "ollama": a model served by Ollama. Imported only when this backend is chosen."""

from __future__ import annotations

from langchain_ollama import ChatOllama

from rag.llm.servers import ExplainedErrors
from rag.settings import Settings


class ServerChatOllama(ExplainedErrors, ChatOllama):
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


def make_ollama(settings: Settings) -> ServerChatOllama:
    """The chat model `settings.ollama_model` at `settings.ollama_base_url`."""
    return ServerChatOllama(
        base_url=settings.ollama_base_url,
        model=settings.ollama_model,
        temperature=settings.llm_temperature,
        num_predict=settings.llm_max_tokens,
    )
