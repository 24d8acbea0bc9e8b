"""A small news site on a loopback port, for `rag fetch` tests: saved pages with menus and
footers, an RSS and an Atom feed, a sitemap index, a robots.txt that forbids /private/, a
redirect to a cloud-metadata address, a slow page, an oversized page, a JSON document, a page
that changes between runs and pages that answer 304 to a matching If-None-Match.

Test modules use it with `pytest_plugins = ["tests.web_site"]` and the `news_site` fixture.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

OUTLET = "Harbour Post"
MENU = (
    '<nav class="menu"><ul><li><a href="/">Home</a></li><li><a href="/news/">News</a></li>'
    '<li><a href="/sport/">Sport</a></li><li><a href="/weather/">Weather</a></li>'
    "<li>English हिन्दी বাংলা मराठी</li><li>Most Searched Products</li><li>Today's Deals</li>"
    "<li>Horoscope</li></ul></nav>"
)
FOOTER = (
    '<div class="newsletter"><p>Sign up for our newsletter. We will never share your email '
    "address with third parties and you can unsubscribe at any time.</p></div>"
    "<footer><p>Copyright 2025 Harbour Post Media Ltd. All rights reserved.</p>"
    "<p>Cookie settings | Privacy policy | Terms of use | Contact us</p></footer>"
)
STORIES = {
    "story-1": (
        "Harbour bridge reopens after repairs",
        "2025-03-14",
        "The Harbour Street bridge reopened on Friday after eight months of repairs costing "
        "4.2 million pounds. Engineers replaced the corroded steel deck and two bearings. "
        "The council said traffic would be limited to 20 miles per hour for a month. "
        "Local traders welcomed the reopening, saying footfall had fallen by a third while "
        "the bridge was closed to cars and buses.",
    ),
    "story-2": (
        "Lifeboat crew rescues three fishermen",
        "2025-03-15",
        "Volunteers from the Kestrel Point lifeboat station rescued three fishermen on "
        "Saturday after their trawler lost power in a gale eleven miles offshore. "
        "The crew towed the vessel back to harbour in waves of up to five metres. "
        "The coastguard said all three men were unhurt and praised the volunteers' speed.",
    ),
    "story-3": (
        "Ferry operator orders two electric vessels",
        "2025-03-17",
        "Bluewater Ferries has ordered two battery-electric ferries for the island route, "
        "the company announced on Monday. The vessels will be built at the Harbourton yard "
        "and enter service in 2027, replacing diesel ships that are thirty years old. "
        "Each ferry will carry 300 passengers and charge in twelve minutes at the quay.",
    ),
    "story-4": (
        "Museum wins lottery grant for new gallery",
        "2025-03-18",
        "The Maritime Museum has won a 1.1 million pound lottery grant to build a gallery "
        "for its collection of ship models. Work starts in the autumn and the gallery will "
        "open in 2026. The director said the grant would let the museum show 400 models "
        "that have been kept in storage since the flood of 2019.",
    ),
}


def news_page(slug: str, version: int = 1) -> str:
    """A story page as a CMS renders it: menus, the article, related links, footer."""
    title, date, body = STORIES.get(slug, ("Council budget update", "2025-03-20", ""))
    if not body:
        body = (
            f"The council published version {version} of its budget on Thursday. "
            f"Councillors will vote on the plan, revision number {version}, next week. "
            "The budget sets out spending on roads, schools and the harbour for the year ahead, "
            "and proposes a council tax rise of three per cent to pay for social care."
        )
    sentences = [s.strip().rstrip(".") for s in body.split(". ") if s.strip()]
    paragraphs = "".join(f"<p>{html.escape(s)}.</p>" for s in sentences)
    related = "".join(f'<li><a href="/news/{s}.html">{t[0]}</a></li>' for s, t in STORIES.items())
    return f"""<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8">
<title>{html.escape(title)} | {OUTLET}</title>
<meta property="og:title" content="{html.escape(title)}">
<meta property="og:site_name" content="{OUTLET}">
<meta name="author" content="Dana Reyes">
<script type="application/ld+json">{{"@context": "https://schema.org", "@type": "NewsArticle",
"headline": "{html.escape(title)}", "datePublished": "{date}T08:30:00+00:00",
"dateModified": "2025-04-01T10:00:00+00:00", "author": {{"@type": "Person", "name": "Dana Reyes"}},
"publisher": {{"@type": "Organization", "name": "{OUTLET}"}}}}</script>
</head><body>{MENU}
<div class="cookie-banner">We use cookies to improve your experience. Accept all cookies.</div>
<main><article><h1>{html.escape(title)}</h1>
<p class="byline">By Dana Reyes</p>{paragraphs}</article>
<aside class="related"><h2>Most read</h2><ul>{related}</ul></aside></main>
{FOOTER}</body></html>"""


def rss(base: str) -> str:
    """An RSS 2.0 feed of stories 1 and 2."""
    items = "".join(
        f"<item><title>{STORIES[s][0]}</title><link>{base}/news/{s}.html</link></item>"
        for s in ("story-1", "story-2")
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{OUTLET}</title>{items}</channel></rss>'


def atom(base: str) -> str:
    """An Atom feed of story 3 and the page that changes."""
    entries = "".join(
        f'<entry><title>{s}</title><id>{base}/news/{s}.html</id><link href="{base}/news/{s}.html"/>'
        "<updated>2025-03-17T08:00:00Z</updated></entry>"
        for s in ("story-3", "budget")
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{OUTLET}</title><id>{base}/</id><updated>2025-03-17T08:00:00Z</updated>"
        f"{entries}</feed>"
    )


def sitemap_index(base: str) -> str:
    """A sitemap index pointing at one sitemap."""
    return (
        '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<sitemap><loc>{base}/sitemap-news.xml</loc></sitemap></sitemapindex>"
    )


SITEMAP_PATHS = [
    "/news/story-4.html",
    "/news/story-1.html",  # also in the RSS feed: fetched once
    "/private/staff-rota.html",  # robots.txt forbids /private/
    "/go-metadata",  # redirects to the cloud metadata address
    "/slow.html",  # answers after the client's timeout
    "/huge.html",  # over the size cap, with no Content-Length
    "/data.json",  # not HTML
]


def sitemap(base: str) -> str:
    """The news sitemap (a urlset)."""
    urls = "".join(f"<url><loc>{base}{p}</loc></url>" for p in SITEMAP_PATHS)
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'


@dataclass
class NewsSite:
    """The running site: its base URL, what it served, and the page version that changes."""

    base: str
    version: int = 1
    slow_seconds: float = 3.0
    served: Counter = field(default_factory=Counter)  # (path, status) -> count
    hosts: list[str] = field(default_factory=list)  # the Host header of every request

    def url(self, path: str) -> str:
        """An absolute URL on the site."""
        return self.base + path

    def pages_served(self) -> int:
        """How many 200 responses the site gave for its story pages (/news/)."""
        return sum(
            n
            for (path, status), n in self.served.items()
            if status == 200 and path.startswith("/news/")
        )


def _handler(site: NewsSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def send(self, status: int, body: bytes = b"", kind: str = "text/html; charset=utf-8",
                 headers: dict[str, str] | None = None, length: bool = True) -> None:  # fmt: skip
            site.served[(self.path, status)] += 1
            self.send_response(status)
            self.send_header("Content-Type", kind)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(ConnectionError):  # the client gave up (timeout, cap)
                self.wfile.write(body)

        def do_GET(self) -> None:
            site.hosts.append(self.headers.get("Host", ""))
            path = self.path
            if path == "/robots.txt":
                return self.send(200, b"User-agent: *\nDisallow: /private/\n", "text/plain")
            if path in ("/feed.rss", "/feed.atom"):
                body = (rss if path.endswith("rss") else atom)(site.base)
                return self.send(200, body.encode(), "application/xml")
            if path in ("/sitemap.xml", "/sitemap-news.xml"):
                body = (sitemap_index if path == "/sitemap.xml" else sitemap)(site.base)
                return self.send(200, body.encode(), "application/xml")
            if path == "/go-metadata":
                location = "http://169.254.169.254/latest/meta-data/"
                return self.send(302, b"", headers={"Location": location})
            if path == "/slow.html":
                time.sleep(site.slow_seconds)
                return self.send(200, news_page("story-1").encode())
            if path == "/huge.html":
                return self.send(200, b"<p>" + b"x" * (3 * 2**20) + b"</p>", length=False)
            if path == "/data.json":
                return self.send(200, b'{"not": "html"}', "application/json")
            if path.startswith(("/news/", "/private/")) and path.endswith(".html"):
                slug = path.rsplit("/", 1)[1].removesuffix(".html")
                body = news_page(slug, site.version).encode()
                etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    return self.send(304, headers={"ETag": etag})
                return self.send(200, body, headers={"ETag": etag})
            return self.send(404, b"not found", "text/plain")

    return Handler


@pytest.fixture
def news_site() -> Iterator[NewsSite]:
    """The news site, served on 127.0.0.1 for the test."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(NewsSite("")))
    site = NewsSite(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(site)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="news-site", daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
