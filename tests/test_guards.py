"""ui.guards: host and origin rules, the API token and the rate limit (plain functions; the guards in a
real server are tested in test_server.py, test_api_hardening.py and test_security.py)."""

from __future__ import annotations

import re
import time

import pytest

from rag.errors import RateLimitError, SettingsError
from rag.settings import Settings
from ui.guards import (
    RateLimiter,
    allowed_hosts,
    bearer_ok,
    frame_ancestors,
    origin_patterns,
    origin_regex,
)

EXTRA_ORIGINS = ["https://intranet.example.com", "https://*.corp.example"]


LOCAL = [f"{s}://{h}:*" for h in ("127.0.0.1", "localhost", "[::1]") for s in ("http", "https")]


def test_origin_patterns_defaults_and_wildcards():
    patterns = origin_patterns(Settings(allowed_origins=[*EXTRA_ORIGINS, "http://wiki:8080/"]))
    assert patterns == [*LOCAL, *EXTRA_ORIGINS, "http://wiki:8080"]
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
        "http://localhost.evil.example:5173",
        "https://intranet.example.com.evil",
        "https://corp.example",
        "http://wiki:8081",
        "null",
        "http://evil.com/?x=localhost",
    ):
        assert not allowed.fullmatch(bad), bad
    assert frame_ancestors(patterns).startswith("frame-ancestors 'self' http://127.0.0.1:* ")


def test_allowed_hosts_are_the_bind_address_local_names_and_the_setting():
    assert allowed_hosts(Settings()) == ["127.0.0.1", "localhost", "[::1]"]
    wide = Settings(host="0.0.0.0", allowed_hosts=["RAG.Intranet.example", "*.corp.example"])
    assert allowed_hosts(wide) == ["localhost", "127.0.0.1", "[::1]", "rag.intranet.example",
                                   "*.corp.example"]  # fmt: skip
    assert allowed_hosts(Settings(host="::1"))[0] == "[::1]"
    # The origin rules follow the hosts, never the request's own Host header.
    origins = re.compile("|".join(f"(?:{origin_regex(p)})" for p in origin_patterns(wide)))
    assert origins.fullmatch("https://rag.intranet.example")
    assert origins.fullmatch("http://a.corp.example:7860")
    assert not origins.fullmatch("http://evil.example:7860")
    for bad in ("http://rag.example", "rag.example:80", "a b"):
        with pytest.raises(SettingsError, match="RAG_ALLOWED_HOSTS"):
            allowed_hosts(Settings(allowed_hosts=[bad]))


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
