"""ui.guards: origin rules, the API token and the rate limit (plain functions; the guards in a
real server are tested in test_server.py, test_api_hardening.py and test_security.py)."""

from __future__ import annotations

import re
import time

import pytest

from rag.errors import RateLimitError, SettingsError
from rag.settings import Settings
from ui.guards import RateLimiter, bearer_ok, frame_ancestors, origin_patterns, origin_regex

EXTRA_ORIGINS = ["https://intranet.example.com", "https://*.corp.example"]


def test_origin_patterns_defaults_and_wildcards():
    patterns = origin_patterns(Settings(allowed_origins=[*EXTRA_ORIGINS, "http://wiki:8080/"]))
    assert patterns == [
        "http://localhost:*",
        "http://127.0.0.1:*",
        *EXTRA_ORIGINS,
        "http://wiki:8080",
    ]
    allowed = re.compile("|".join(f"(?:{origin_regex(p)})" for p in patterns))
    for ok in (
        "http://localhost:5173",
        "http://127.0.0.1",
        "https://intranet.example.com",
        "https://a.b.corp.example",
        "http://wiki:8080",
    ):
        assert allowed.fullmatch(ok), ok
    for bad in (
        "http://127.0.0.2:80",
        "https://localhost:5173",
        "https://intranet.example.com.evil",
        "https://corp.example",
        "http://wiki:8081",
        "null",
        "http://evil.com/?x=localhost",
    ):
        assert not allowed.fullmatch(bad), bad
    assert frame_ancestors(patterns).startswith("frame-ancestors 'self' http://localhost:* ")


@pytest.mark.parametrize("bad", ["intranet.example.com", "https://x.com; script-src *", "ftp://x"])
def test_malformed_allowed_origin_is_a_settings_error(bad):

    with pytest.raises(SettingsError, match="RAG_ALLOWED_ORIGINS"):
        origin_patterns(Settings(allowed_origins=[bad]))


def test_bearer_token_is_checked_only_when_one_is_set():
    assert bearer_ok(None, "")
    assert bearer_ok("Bearer s3cret-token", "s3cret-token")
    assert bearer_ok("bearer  s3cret-token ", "s3cret-token")
    for wrong in (None, "", "s3cret-token", "Basic s3cret-token", "Bearer s3cret"):
        assert not bearer_ok(wrong, "s3cret-token")


def test_rate_limiter_window():
    limiter = RateLimiter(2, window=0.5)
    limiter.check("a")
    limiter.check("a")
    limiter.check("b")  # per client
    with pytest.raises(RateLimitError) as info:
        limiter.check("a")
    assert info.value.retry_after >= 1 and "2 per minute" in str(info.value)
    time.sleep(0.6)
    limiter.check("a")
