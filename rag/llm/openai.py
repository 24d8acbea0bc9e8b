"""Backend "openai": any OpenAI-compatible server (vLLM, llama.cpp's server, OpenAI itself).

Imported only when this backend is chosen: langchain_openai takes ~1.5 s to import.
"""

from __future__ import annotations

from langchain_openai import ChatOpenAI

from rag.errors import SettingsError
from rag.llm.servers import ExplainedErrors
from rag.settings import Settings


class ServerChatOpenAI(ExplainedErrors, ChatOpenAI):
    """ChatOpenAI for an OpenAI-compatible server, with errors that say what to fix."""

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


def make_openai(settings: Settings) -> ServerChatOpenAI:
    """The chat model at `settings.openai_base_url` (SettingsError if neither URL nor key)."""
    if not settings.openai_base_url and not settings.openai_api_key:
        raise SettingsError(
            "RAG_LLM_BACKEND=openai needs RAG_OPENAI_BASE_URL (an OpenAI-compatible server) "
            "and/or RAG_OPENAI_API_KEY."
        )
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
    return ServerChatOpenAI(
        base_url=settings.openai_base_url,
        model=settings.openai_model,
        api_key=key,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens,
        streaming=True,
    )
