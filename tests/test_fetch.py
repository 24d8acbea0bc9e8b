"""`rag fetch` against a real HTTP site on a loopback port (tests/web_site.py): pages, feeds,
a sitemap index, robots.txt, unsafe addresses, timeouts, the size cap, content types, and
conditional GET on the second run."""

from __future__ import annotations

import json
import socket

import pytest

from rag import safehttp
from rag.extract import read_sidecar
from rag.fetch import page_path, parse_sitemap, run_fetch
from rag.settings import Settings

pytest_plugins = ["tests.web_site"]

LOOPBACK = ["127.0.0.1/32"]
ALLOWED = ["story-1", "story-2", "story-3", "story-4", "budget"]


def settings_for(tmp_path, **overrides) -> Settings:
    values = {
        "corpus_dir": tmp_path / "corpus",
        "fetch_allowed_networks": LOOPBACK,
        "fetch_delay": 0.0,
        "fetch_timeout": 1.0,
        "fetch_max_mb": 1.0,
        **overrides,
    }
    return Settings(**values)


def fetch_all(site, settings: Settings):
    return run_fetch(
        settings,
        [site.url("/news/story-2.html")],
        [site.url("/feed.rss"), site.url("/feed.atom")],
        [site.url("/sitemap.xml")],
        show_progress=False,
    )


def test_every_allowed_page_is_fetched_and_the_rest_refused_with_the_reason(news_site, tmp_path):
    settings = settings_for(tmp_path)
    report = fetch_all(news_site, settings)
    assert sorted(report.fetched) == sorted(news_site.url(f"/news/{s}.html") for s in ALLOWED)
    why = dict(report.skipped) | dict(report.failed)
    assert why[news_site.url("/private/staff-rota.html")] == "robots.txt forbids it"
    metadata = why[news_site.url("/go-metadata")]
    assert "169.254.169.254, a link-local" in metadata and "RAG_FETCH_ALLOWED_NETWORKS" in metadata
    assert "timed out" in why[news_site.url("/slow.html")]
    assert "byte cap" in why[news_site.url("/huge.html")]
    assert "content type is application/json, not HTML" in why[news_site.url("/data.json")]
    assert news_site.served[("/private/staff-rota.html", 200)] == 0  # never asked for
    assert report.summary().startswith("Fetched 5 pages, 0 unchanged, 4 skipped, 1 failed.")

    page = page_path(settings.corpus_dir, news_site.url("/news/story-1.html"))
    assert page.relative_to(settings.corpus_dir).as_posix() == (
        f"web/127.0.0.1_{news_site.base.rsplit(':', 1)[1]}/news/story-1.html"
    )
    sidecar = read_sidecar(page)
    assert sidecar["url"] == news_site.url("/news/story-1.html")
    assert sidecar["etag"].startswith('"') and sidecar["fetched"].endswith("+00:00")
    assert not list(settings.corpus_dir.rglob(".*.part")), "no temp file is left"


def test_a_second_run_downloads_nothing_and_a_changed_page_is_fetched_again(news_site, tmp_path):
    settings = settings_for(tmp_path)
    fetch_all(news_site, settings)
    served = news_site.pages_served()
    again = fetch_all(news_site, settings)
    assert again.fetched == []
    assert sorted(again.unchanged) == sorted(news_site.url(f"/news/{s}.html") for s in ALLOWED)
    assert news_site.pages_served() == served, "every page answered 304"
    assert news_site.served[("/news/story-1.html", 304)] == 1

    news_site.version = 2  # the budget page changes
    third = fetch_all(news_site, settings)
    assert third.fetched == [news_site.url("/news/budget.html")]
    saved = page_path(settings.corpus_dir, news_site.url("/news/budget.html")).read_text()
    assert "revision number 2" in saved


def test_the_loopback_site_itself_is_refused_unless_its_network_is_allowed(news_site, tmp_path):
    report = run_fetch(
        settings_for(tmp_path, fetch_allowed_networks=[]),
        [news_site.url("/news/story-1.html")],
        [],
        [],
        show_progress=False,
    )
    assert report.fetched == []
    (url, why), *_ = report.skipped
    assert "resolves to 127.0.0.1, a loopback address: refused" in why
    assert sum(news_site.served.values()) == 0, "nothing was sent to the refused address"


def test_the_connection_goes_to_the_checked_address(news_site, tmp_path, monkeypatch):
    """A made-up name that only our resolver knows: the request reaches the loopback site with
    the name in its Host header, so httpx connected to the address we checked, not to what a
    second DNS lookup would say."""
    port = int(news_site.base.rsplit(":", 1)[1])
    real = socket.getaddrinfo
    lookups = []

    def fake_dns(host, *args, **kwargs):
        lookups.append(host)
        if host == "news.example":
            return real("127.0.0.1", *args, **kwargs)
        if host == "evil.example":
            return real("10.1.2.3", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(safehttp.socket, "getaddrinfo", fake_dns)
    report = run_fetch(
        settings_for(tmp_path),
        [f"http://news.example:{port}/news/story-3.html", "http://evil.example/news/x.html"],
        [],
        [],
        show_progress=False,
    )
    assert report.fetched == [f"http://news.example:{port}/news/story-3.html"]
    assert f"news.example:{port}" in news_site.hosts
    assert (
        "resolves to 10.1.2.3, a private address"
        in dict(report.skipped)["http://evil.example/news/x.html"]
    )
    assert lookups.count("news.example") == 2  # robots.txt and the page, one lookup each


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.org/x", "gopher://example.org/", "javascript:alert(1)"],
)
def test_only_http_and_https_are_fetched(tmp_path, url):
    report = run_fetch(settings_for(tmp_path), [url], [], [], show_progress=False)
    assert report.fetched == [] and "only http and https" in report.skipped[0][1]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.8", "private"),
        ("192.168.1.1", "private"),
        ("172.16.5.4", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "not public"),
        ("fd00:ec2::254", "private"),
    ],
)
def test_non_public_addresses_are_named(address, kind):
    import ipaddress

    assert kind in (safehttp.address_problem(ipaddress.ip_address(address)) or "")


def test_public_addresses_pass():
    import ipaddress

    assert safehttp.address_problem(ipaddress.ip_address("93.184.215.14")) is None


def test_sitemaps_are_parsed_without_entities():
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>https://x.org/&b;'
        b"</loc></url></urlset>"
    )
    kind, locs = parse_sitemap(bomb)
    assert kind == "urlset" and all("aaaa" not in loc for loc in locs)
    assert parse_sitemap(b"<html><body>not a sitemap</body></html>") == (None, [])


def test_page_paths_stay_inside_the_corpus(tmp_path):
    for url in (
        "https://a.example/../../etc/passwd",
        "https://a.example/%2e%2e/%2e%2e/x",
        "https://a.example/.hidden/.page",
        "https://a.example/",
        "https://a.example/news/?id=7",
    ):
        path = page_path(tmp_path, url)
        assert path.resolve().is_relative_to(tmp_path / "web")
        assert not any(part.startswith(".") for part in path.relative_to(tmp_path).parts), url
        assert path.suffix == ".html"


def test_the_sidecar_is_json_the_loader_reads(news_site, tmp_path):
    from rag.loading import load_article

    settings = settings_for(tmp_path)
    run_fetch(settings, [news_site.url("/news/story-4.html")], [], [], show_progress=False)
    page = page_path(settings.corpus_dir, news_site.url("/news/story-4.html"))
    json.loads(page.with_name(page.name + ".json").read_text())
    article = load_article(page, settings.corpus_dir)
    assert article.metadata["url"] == news_site.url("/news/story-4.html")
    assert article.metadata["date"] == "2025-03-18"
    assert article.metadata["outlet"] == "Harbour Post"
    assert article.title == "Museum wins lottery grant for new gallery"
    for chrome in ("Horoscope", "never share your email", "Accept all cookies", "Most read"):
        assert chrome not in article.text, chrome


@pytest.mark.models
def test_rag_fetch_then_rag_articles(news_site, tmp_path):
    """The real commands: `rag fetch` (with its ingest), again (nothing downloaded), then
    `rag articles --json`."""
    from tests.conftest import run_rag

    env = {
        "RAG_CORPUS_DIR": str(tmp_path / "corpus"),
        "RAG_STORE_DIR": str(tmp_path / "chroma"),
        "RAG_FETCH_ALLOWED_NETWORKS": json.dumps(LOOPBACK),
        "RAG_FETCH_DELAY": "0",
        "RAG_FETCH_TIMEOUT": "1",
        "RAG_FETCH_MAX_MB": "1",
    }
    args = ["fetch", "--quiet", "--feed", news_site.url("/feed.rss"), "--sitemap",
            news_site.url("/sitemap.xml"), news_site.url("/news/story-3.html")]  # fmt: skip
    first = run_rag(*args, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Fetched 4 pages, 0 unchanged, 4 skipped, 1 failed." in first.stdout
    assert "robots.txt forbids it" in first.stdout and "169.254.169.254" in first.stdout
    assert "4 added" in first.stdout
    assert "Web pages: 4 extracted, 0 fell back to a simpler extractor; 0 undated." in first.stdout
    second = run_rag(*args, env=env)
    assert "Fetched 0 pages, 4 unchanged" in second.stdout, second.stdout + second.stderr
    assert "0 added, 0 updated, 0 removed, 4 unchanged" in second.stdout

    listed = run_rag("articles", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    articles = {a["url"]: a for a in json.loads(listed.stdout)}
    story = articles[news_site.url("/news/story-4.html")]
    assert story["title"] == "Museum wins lottery grant for new gallery"
    assert (story["date"], story["outlet"], story["extractor"]) == (
        "2025-03-18",
        "Harbour Post",
        "trafilatura",
    )
    assert len(articles) == 4
