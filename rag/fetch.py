"""`rag fetch`: download web pages (given, from RSS/Atom feeds, or from sitemaps) into the
corpus folder, as `web/<host>/<path>.html` plus a sidecar `<path>.html.json` (URL, fetch time,
ETag, Last-Modified, SHA-256), so the archive stays a folder of files that `rag ingest` reads.

Polite: robots.txt is honoured (and its Crawl-delay), one host is asked at most once per
`delay` seconds, pages already fetched are asked for with If-None-Match / If-Modified-Since
(a 304, or the same bytes, counts as unchanged and rewrites nothing). Safe: see
`rag.safehttp`. Feeds are parsed by feedparser; sitemaps (and sitemap indexes) by lxml with
entities and network access off.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import urllib.robotparser
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import httpx

from rag.extract import read_sidecar, sidecar_path
from rag.safehttp import Fetched, FetchRefused, Networks, get, make_client, networks

if TYPE_CHECKING:
    from rag.settings import Settings

PAGE_TYPES = ("text/html", "application/xhtml+xml")
_SEGMENT = re.compile(r"[^A-Za-z0-9._-]+")
MAX_SITEMAPS = 50  # sitemaps read from one index, nested ones included


@dataclass
class FetchReport:
    """What a fetch run did: pages saved, unchanged ones, and the rest with the reason."""

    fetched: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # by rule: robots, address...
    failed: list[tuple[str, str]] = field(default_factory=list)  # could not get it

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [
            f"Fetched {len(self.fetched)} pages, {len(self.unchanged)} unchanged, "
            f"{len(self.skipped)} skipped, {len(self.failed)} failed."
        ]
        lines += [f"  skipped {url}: {why}" for url, why in self.skipped]
        lines += [f"  failed {url}: {why}" for url, why in self.failed]
        return "\n".join(lines)


@dataclass
class Fetcher:
    """Fetches pages into `corpus_dir / "web"` with the politeness and safety rules above."""

    corpus_dir: Path
    allowed: Networks = ()  # non-public networks that may be reached
    timeout: float = 20.0
    max_bytes: int = 5 * 2**20
    delay: float = 1.0
    user_agent: str = "rag-fetch/0.1"
    transport: Any = None  # tests may pass their own httpx transport
    _client: httpx.Client | None = None
    _robots: dict[str, urllib.robotparser.RobotFileParser | str] = field(default_factory=dict)
    _last: dict[str, float] = field(default_factory=dict)

    @property
    def client(self) -> httpx.Client:
        """The safe HTTP client, made on first use."""
        if self._client is None:
            self._client = make_client(
                allowed=self.allowed,
                timeout=self.timeout,
                user_agent=self.user_agent,
                transport=self.transport,
            )
        return self._client

    def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            self._client.close()

    # ---- one request -------------------------------------------------------------------

    def request(self, url: str, headers: dict[str, str] | None = None) -> Fetched:
        """A polite GET: waits out the host's delay first."""
        host = urlsplit(url).netloc.lower()
        robots = self._robots.get(host)
        crawl = robots.crawl_delay(self.user_agent) if not isinstance(robots, str | None) else None
        wait = max(self.delay, float(crawl or 0)) - (time.monotonic() - self._last.get(host, -1e9))
        if wait > 0:
            time.sleep(wait)
        try:
            return get(
                self.client,
                url,
                max_bytes=self.max_bytes,
                deadline=self.timeout * 3,
                headers=headers,
            )
        finally:
            self._last[host] = time.monotonic()

    def robots_problem(self, url: str) -> str | None:
        """None if robots.txt lets us fetch `url`, else the reason."""
        parts = urlsplit(url)
        host = parts.netloc.lower()
        if host not in self._robots:
            self._robots[host] = self._read_robots(f"{parts.scheme}://{parts.netloc}/robots.txt")
        robots = self._robots[host]
        if isinstance(robots, str):
            return robots
        if not robots.can_fetch(self.user_agent, url):
            return "robots.txt forbids it"
        return None

    def _read_robots(self, url: str) -> urllib.robotparser.RobotFileParser | str:
        parser = urllib.robotparser.RobotFileParser(url)
        try:
            got = self.request(url)
        except FetchRefused as exc:
            return str(exc)
        except httpx.HTTPError as exc:
            return f"robots.txt could not be read ({type(exc).__name__}), so nothing is fetched"
        if 400 <= got.status < 500:  # no robots.txt: everything is allowed
            parser.parse([])
        elif got.status >= 300:
            return f"robots.txt answered HTTP {got.status}, so nothing is fetched"
        else:
            parser.parse(got.body.decode("utf-8", "replace").splitlines())
        return parser

    # ---- pages -------------------------------------------------------------------------

    def fetch_pages(self, urls: Iterable[str], report: FetchReport, limit: int) -> None:
        """Fetch each page (at most `limit` new or changed ones) into the corpus."""
        for url in urls:
            if len(report.fetched) >= limit:
                report.skipped.append((url, f"over the page limit ({limit}, --limit)"))
                continue
            try:
                self._fetch_page(url, report)
            except FetchRefused as exc:
                report.skipped.append((url, _reason(exc, url)))
            except httpx.HTTPError as exc:
                report.failed.append((url, _network_reason(exc)))
            except OSError as exc:
                report.failed.append((url, f"cannot save it ({exc.strerror or exc})"))

    def _fetch_page(self, url: str, report: FetchReport) -> None:
        if why := self.robots_problem(url):
            raise FetchRefused(why)
        target = page_path(self.corpus_dir, url)
        old = read_sidecar(target) if target.exists() else {}
        conditional = {}
        if old.get("etag"):
            conditional["If-None-Match"] = str(old["etag"])
        if old.get("last_modified"):
            conditional["If-Modified-Since"] = str(old["last_modified"])
        got = self.request(url, conditional)
        if got.status == 304:
            report.unchanged.append(url)
            return
        if got.status != 200:
            report.failed.append((url, f"HTTP {got.status}"))
            return
        kind = got.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in PAGE_TYPES:
            raise FetchRefused(f"its content type is {kind or 'not given'}, not HTML")
        digest = hashlib.sha256(got.body).hexdigest()
        sidecar = {
            "url": got.url,
            "requested": url,
            "fetched": datetime.now(UTC).isoformat(timespec="seconds"),
            "etag": got.headers.get("etag"),
            "last_modified": got.headers.get("last-modified"),
            "sha256": digest,
        }
        if old.get("sha256") == digest:
            _write(sidecar_path(target), json.dumps(sidecar, indent=1).encode())
            report.unchanged.append(url)
            return
        _write(target, got.body)  # the page first: a sidecar always describes the page beside it
        _write(sidecar_path(target), json.dumps(sidecar, indent=1).encode())
        report.fetched.append(url)

    # ---- feeds and sitemaps --------------------------------------------------------------

    def feed_links(self, url: str, report: FetchReport) -> list[str]:
        """The entry links of an RSS or Atom feed (none, with the reason in `report`, if it
        cannot be read)."""
        import feedparser

        body = self._document(url, report)
        if body is None:
            return []
        parsed = feedparser.parse(body)
        links = [str(e.get("link")) for e in parsed.entries if e.get("link")]
        if not links and parsed.get("bozo"):
            report.failed.append((url, f"not a readable feed ({parsed.get('bozo_exception')})"))
        return [urljoin(url, link) for link in links]

    def sitemap_links(self, url: str, report: FetchReport) -> list[str]:
        """The page URLs of a sitemap, or of every sitemap a sitemap index lists."""
        pending, seen, pages = [url], set[str](), list[str]()
        while pending and len(seen) < MAX_SITEMAPS:
            current = pending.pop(0)
            if current in seen:
                continue
            seen.add(current)
            body = self._document(current, report)
            if body is None:
                continue
            kind, locs = parse_sitemap(body)
            if kind is None:
                report.failed.append((current, "not a sitemap (no <urlset> or <sitemapindex>)"))
            (pending if kind == "sitemapindex" else pages).extend(urljoin(current, x) for x in locs)
        return list(dict.fromkeys(pages))

    def _document(self, url: str, report: FetchReport) -> bytes | None:
        try:
            if why := self.robots_problem(url):
                raise FetchRefused(why)
            got = self.request(url)
        except FetchRefused as exc:
            report.skipped.append((url, _reason(exc, url)))
            return None
        except httpx.HTTPError as exc:
            report.failed.append((url, _network_reason(exc)))
            return None
        if got.status != 200:
            report.failed.append((url, f"HTTP {got.status}"))
            return None
        return got.body


def parse_sitemap(body: bytes) -> tuple[str | None, list[str]]:
    """("urlset" or "sitemapindex", its <loc> URLs), or (None, []) if it is not a sitemap."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=True)
    try:
        root = etree.fromstring(body, parser=parser)
    except etree.XMLSyntaxError:
        return None, []
    if root is None:
        return None, []
    kind = etree.QName(root).localname.lower()
    if kind not in ("urlset", "sitemapindex"):
        return None, []
    locs = [" ".join((el.text or "").split()) for el in root.iter("{*}loc")]
    return kind, [loc for loc in locs if loc]


def page_path(corpus_dir: Path, url: str) -> Path:
    """Where a page's HTML is kept: corpus/web/<host>[_<port>]/<path>[-<query hash>].html."""
    parts = urlsplit(url)
    host = (parts.hostname or "unknown").lower() + (f"_{parts.port}" if parts.port else "")
    segments = [_SEGMENT.sub("_", s)[:100] for s in parts.path.split("/") if s]
    segments = [s.lstrip(".") or "_" for s in segments] or ["index"]  # no hidden names
    if parts.path.endswith("/") and parts.path != "/":
        segments.append("index")
    name = segments[-1].removesuffix(".html").removesuffix(".htm")
    if parts.query:
        name += "-" + hashlib.sha1(parts.query.encode()).hexdigest()[:10]
    return corpus_dir.joinpath("web", _SEGMENT.sub("_", host), *segments[:-1], name + ".html")


def _write(path: Path, data: bytes) -> None:
    """Write in one step (a temp file renamed over the old one): a kill leaves old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.part")
    temp.write_bytes(data)
    os.replace(temp, path)


def _reason(exc: FetchRefused, url: str) -> str:
    return str(exc).removeprefix(f"{url}: ")


def _network_reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__}; RAG_FETCH_TIMEOUT)"
    return f"{type(exc).__name__}: {exc}"


def run_fetch(
    settings: Settings,
    urls: list[str],
    feeds: list[str],
    sitemaps: list[str],
    *,
    limit: int | None = None,
    show_progress: bool = True,
) -> FetchReport:
    """Fetch the pages, the feeds' entries and the sitemaps' pages into `settings.corpus_dir`."""
    report = FetchReport()
    fetcher = Fetcher(
        settings.corpus_dir,
        allowed=networks(settings.fetch_allowed_networks),
        timeout=settings.fetch_timeout,
        max_bytes=int(settings.fetch_max_mb * 2**20),
        delay=settings.fetch_delay,
        user_agent=settings.fetch_user_agent,
    )
    try:
        pages = list(urls)
        for feed in feeds:
            pages += fetcher.feed_links(feed, report)
        for sitemap in sitemaps:
            pages += fetcher.sitemap_links(sitemap, report)
        pages = list(dict.fromkeys(pages))
        fetcher.fetch_pages(
            progress(pages, show_progress), report, limit or settings.fetch_max_pages
        )
    finally:
        fetcher.close()
    return report


def progress(urls: list[str], enabled: bool) -> Iterator[str]:
    """The URLs, with a progress bar on the terminal when there are several."""
    if not enabled or len(urls) < 2:
        yield from urls
        return
    from tqdm import tqdm

    yield from tqdm(urls, unit="page", desc="Fetching")
