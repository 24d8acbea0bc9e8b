"""HEAD wherever GET is served, and 405 (with Allow) for a wrong method on the app's own
routes, in-process through the whole middleware stack (plumbing; a stand-in QA)."""

from __future__ import annotations

import pytest

from tests.test_apidocs import AUTH, _client


@pytest.fixture(scope="module")
def client():
    return _client()[0]


@pytest.mark.parametrize("path", ["/", "/widget", "/healthz", "/docs", "/redoc", "/api/status"])
def test_head_is_answered_like_get_without_a_body(client, path):
    got = client.get(path, headers=AUTH)
    head = client.head(path, headers=AUTH)
    assert (head.status_code, got.status_code) == (200, 200), path
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]


@pytest.mark.parametrize(
    "method, path, allow",
    [("GET", "/api/ask", "POST"), ("GET", "/api/ask/stream", "POST"),
     ("DELETE", "/api/status", "GET, HEAD"), ("PUT", "/healthz", "GET, HEAD")],
)  # fmt: skip
def test_a_wrong_method_is_405_with_the_allowed_ones(client, method, path, allow):
    r = client.request(method, path, headers=AUTH)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    assert (
        r.json()["error"] == f"{method} is not served at {path}; use {allow}. The API is at /docs."
    )


def test_an_unknown_path_is_still_404(client):
    r = client.get("/nope")
    assert r.status_code == 404 and "/docs" in r.json()["error"]


def test_a_refused_embedder_is_told_which_setting_to_change(client):
    framed = {"Sec-Fetch-Dest": "iframe", "Referer": "https://wiki.corp.example/page"}
    r = client.get("/widget", headers=framed)
    assert r.status_code == 403
    assert "https://wiki.corp.example" in r.text and "RAG_ALLOWED_ORIGINS" in r.text
    assert "frame-ancestors" not in r.headers["content-security-policy"]  # any page may show it
    assert "rag-question" not in r.text
    allowed = {"Sec-Fetch-Dest": "iframe", "Referer": "http://localhost:5000/"}
    assert client.get("/widget", headers=allowed).status_code == 200
    assert client.get("/widget", headers={"Sec-Fetch-Dest": "iframe"}).status_code == 200  # CSP


def test_pages_send_one_csp_with_frame_ancestors(client):
    for path in ("/", "/widget", "/docs", "/redoc"):
        policies = client.get(path).headers.get_list("content-security-policy")
        assert len(policies) == 1 and "frame-ancestors 'self'" in policies[0], path
    assert "default-src 'self'" in client.get("/docs").headers["content-security-policy"]
