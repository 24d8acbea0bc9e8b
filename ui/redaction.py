"""Secret setting values masked in messages and in everything the server process prints."""

from __future__ import annotations

import sys
from typing import Any, TextIO

MASK = "***"


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every occurrence of each secret, however short, replaced by ***. (A short
    secret masks innocent text too; `rag serve` warns that the token is too short.)"""
    for secret in sorted(secrets, key=len, reverse=True):  # a secret inside another: longest first
        if secret:
            text = text.replace(secret, MASK)
    return text


class RedactingStream:
    """A text stream (stdout, stderr) that masks secrets in everything written through it: log
    lines, and the tracebacks that libraries print themselves."""

    def __init__(self, stream: TextIO, secrets: list[str]) -> None:
        self._stream = stream
        self.secrets = secrets

    def write(self, text: str) -> int:
        """Write `text` with the secrets masked."""
        return self._stream.write(redact(text, self.secrets))

    def flush(self) -> None:
        """Flush the underlying stream."""
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def hide_secrets_in_output(secrets: list[str]) -> None:
    """Mask secrets in all that this process prints; call before logging is set up."""
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout, secrets)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr, secrets)
