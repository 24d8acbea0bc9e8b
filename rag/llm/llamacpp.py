"""Backend "llamacpp" (the default): a GGUF model embedded with llama-cpp-python.

LangChain's own `ChatLlamaCpp` lives in langchain-community, which is being sunset; this is the
small part of it we need: chat completion with the model's template, streamed token by token,
and the prompt cache of `rag.llm.base.PromptCache`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr

from rag.errors import ModelError
from rag.llm.packaged import ensure_default_model
from rag.settings import Settings

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


class LlamaCppChat(BaseChatModel):
    """Chat model backed by a loaded `llama_cpp.Llama`; greedy by default, so answers repeat."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Any  # llama_cpp.Llama
    max_tokens: int = 200
    temperature: float = 0.0
    _warm_state: Any = PrivateAttr(default=None)  # llama_cpp.LlamaState after `warm`

    @property
    def _llm_type(self) -> str:
        return "llama-cpp-embedded"

    def _params(self, stop: list[str] | None) -> dict[str, Any]:
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": 1.0,
            "repeat_penalty": 1.0,
            "stop": stop or [],
        }

    @staticmethod
    def _messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
        return [{"role": _ROLES.get(m.type, "user"), "content": str(m.content)} for m in messages]

    def warm(self, messages: list[BaseMessage]) -> None:
        """Read `messages` into llama.cpp's cache now (generating one token), and keep that
        state (~10 MB): a later prompt that starts with them reads only the rest."""
        params = {**self._params(None), "max_tokens": 1}
        self.client.create_chat_completion(messages=self._messages(messages), **params)
        self._warm_state = self.client.save_state()

    def rewarm(self) -> None:
        """Put back the state `warm` kept, after a call with another prompt (a question's
        rewrite) replaced it: ~0.5 s instead of reading the prompt again (~4 s)."""
        if self._warm_state is not None:
            self.client.load_state(self._warm_state)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result = self.client.create_chat_completion(
            messages=self._messages(messages), **self._params(stop)
        )
        text = result["choices"][0]["message"]["content"] or ""
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        stream = self.client.create_chat_completion(
            messages=self._messages(messages), stream=True, **self._params(stop)
        )
        for part in stream:
            token = part["choices"][0]["delta"].get("content")
            if token:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
                if run_manager:
                    run_manager.on_llm_new_token(token, chunk=chunk)
                yield chunk


def make_llamacpp(settings: Settings) -> LlamaCppChat:
    """Load `settings.llm_model_path` (default: the packaged Qwen) into llama.cpp."""
    try:
        from llama_cpp import Llama
    except ImportError as exc:  # pragma: no cover - install problem
        raise ModelError(
            "llama-cpp-python is not installed. Run scripts/setup.sh, which builds it with "
            "the CPU flags this machine needs."
        ) from exc
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
