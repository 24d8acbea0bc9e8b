"""What the pipeline asks of a chat model beyond LangChain's `BaseChatModel`."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from langchain_core.messages import BaseMessage


@runtime_checkable
class PromptCache(Protocol):
    """An embedded model that can read a prompt's fixed part ahead of time and keep it.

    Server backends (OpenAI-compatible, Ollama) keep their own caches and do not implement it.
    """

    def warm(self, messages: list[BaseMessage]) -> None:
        """Read `messages` now, and keep that state for later prompts that start with them."""

    def rewarm(self) -> None:
        """Put back the state `warm` kept, after a call with another prompt replaced it."""
