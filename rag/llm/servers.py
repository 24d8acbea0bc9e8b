"""Shared by the server-backed chat models: errors that name the server and the setting to fix."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.outputs import ChatGenerationChunk, ChatResult

from rag.errors import ModelError


class ExplainedErrors:
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
            return super()._generate(*args, **kwargs)  # type: ignore[misc,no-any-return]

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        with self._explained():
            yield from super()._stream(*args, **kwargs)  # type: ignore[misc]

    async def _agenerate(self, *args: Any, **kwargs: Any) -> ChatResult:
        with self._explained():
            return await super()._agenerate(*args, **kwargs)  # type: ignore[misc,no-any-return]

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        with self._explained():
            async for chunk in super()._astream(*args, **kwargs):  # type: ignore[misc]
                yield chunk
