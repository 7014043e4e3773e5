"""A local site with the traps of an SEO audit (tests/test_server_audit.py), and a second origin its external links
lead to. Each trap is a page named for it:

  robots.txt: a relative Sitemap line (Sitemap: /sitemap.xml) and Disallow /blocked/
  /sitemap.xml lists every page but /about (indexable, in no sitemap), and /orphan (linked from nowhere, lastmod in
    the future), /gone (404, lastmod "last week"), /moved (301 to /), /noindex (noindex), /blocked/page (robots.txt)
  /long: a title and a description too long; /short: both too short; /images: 4 images, 2 without alt;
  /jsonld: JSON-LD (Article, BreadcrumbList) and microdata (Product); /bad-jsonld: JSON-LD that is no JSON;
  /list, /list/2: rel=next/prev, and /list/2's next leads to /gone; /nofollow (meta robots nofollow);
  /header-nofollow (X-Robots-Tag: nofollow); /sponsored: a rel=nofollow link
  /canonical-404, /canonical-redirect, /canonical-noindex: canonicals to /gone, /moved and /noindex (in no sitemap)
  /en, /fr, /de: /en names /de, which names nothing back, a code "english" and /gone; /fr names /en but not itself
  /article and /article-copy: the same long text but for one word; /article-other: another text
  / links to the other origin (ELSEWHERE: its URL, set once it is served): /fine (200, but HEAD is refused with 405)
    and /missing (404); OtherSite is that origin.
"""

import html

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from local_site import NotedSite

SUFFIX = " | Audit trap site for the tests"  # titles from 31 characters: none too short unless meant to be
WORDS = "A description that says what the page offers, long enough for a search result snippet."


def page(title: str, *links: str, body: str = "Words on the page.", head: str = "",
         description: str | None = None) -> str:
    anchors = "".join(f'<li><a href="{link}">{html.escape(link)}</a></li>' for link in links)
    meta = html.escape(description if description is not None else f"{title}: {WORDS}")
    return (f"<!doctype html><html><head><title>{html.escape(title + SUFFIX)}</title>"
            f'<meta name="description" content="{meta}">{head}</head>'
            f"<body><h1>{html.escape(title)}</h1><p>{body}</p><ul>{anchors}</ul></body></html>")


HOME_LINKS = ["/about", "/moved", "/gone", "/noindex", "/blocked/page", "/long", "/short", "/images", "/jsonld",
              "/bad-jsonld", "/list", "/nofollow", "/header-nofollow", "/sponsored", "/canonical-404",
              "/canonical-redirect", "/canonical-noindex", "/en", "/fr", "/de", "/article", "/article-copy",
              "/article-other"]
ARTICLE = " ".join(f"Paragraph {n} of a long article about crawling sites, with words enough to compare."
                   for n in range(30))


def alternates(*pairs: str) -> str:
    return "".join(f'<link rel="alternate" hreflang="{code}" href="{href}">'
                   for code, href in (pair.split() for pair in pairs))


def canonical(href: str) -> str: return f'<link rel="canonical" href="{href}">'

PAGES = {
    "/": page("Home", *HOME_LINKS, "ELSEWHERE/fine", "ELSEWHERE/missing"),
    "/about": page("About us", "/"),
    "/orphan": page("Orphan", "/"),
    "/noindex": page("Not to index", "/", head='<meta name="robots" content="noindex">'),
    "/blocked/page": page("Blocked", "/"),
    "/long": page("A title that goes on and on about everything this page could ever be about", "/",
                  description=" ".join([WORDS] * 3)),
    "/short": page("Short", "/", description="Too short.").replace(SUFFIX, ""),
    "/images": page("Images", "/", body='<img src="/a.png" alt="A chart"><img src="/b.png"><img src="/c.png" alt="">'
                                        '<img src="/d.png">'),
    "/jsonld": page("Structured data", "/", head='<script type="application/ld+json">{"@context": "https://schema.org"'
                    ', "@graph": [{"@type": "Article", "headline": "A"}, {"@type": "BreadcrumbList"}]}</script>',
                    body='<div itemscope itemtype="https://schema.org/Product"><span itemprop="name">A</span></div>'),
    "/bad-jsonld": page("Broken structured data", "/",
                        head='<script type="application/ld+json">{"@type": "Article", "headline": }</script>'),
    "/list": page("A list, page 1", "/", "/list/2", head='<link rel="next" href="/list/2">'),
    "/list/2": page("A list, page 2", "/", "/list",
                    head='<link rel="prev" href="/list"><link rel="next" href="/gone">'),
    "/nofollow": page("Links not followed", "/", "/about", head='<meta name="robots" content="nofollow">'),
    "/header-nofollow": page("Links not followed either", "/"),
    "/sponsored": page("A sponsored link", "/", body='<a href="/about" rel="sponsored nofollow">sponsor</a>'),
    "/canonical-404": page("Canonical to a missing page", "/", head=canonical("/gone")),
    "/canonical-redirect": page("Canonical to a redirect", "/", head=canonical("/moved")),
    "/canonical-noindex": page("Canonical to a noindex page", "/", head=canonical("/noindex")),
    "/en": page("In English", "/", head=alternates("en /en", "fr /fr", "de /de", "english /en", "es /gone")),
    "/fr": page("En français", "/", head=alternates("en /en")),
    "/de": page("Auf Deutsch", "/"),
    "/article": page("An article", "/", body=ARTICLE),
    "/article-copy": page("A copy of the article", "/", body=ARTICLE.replace("Paragraph 5", "Section 5")),
    "/article-other": page("Another article", "/", body=" ".join(
        f"Chapter {n}: a different text on another subject, each line a little unlike the one before it."
        for n in range(12))),
}
LASTMOD = {"/": "2026-01-05", "/orphan": "2999-01-01", "/gone": "last week", "/long": "2025-06",
           "/short": "2025-06-31"}
SITEMAP = [path for path in PAGES if path != "/about" and not path.startswith("/canonical")] + ["/gone", "/moved"]


class AuditSite(NotedSite):
    elsewhere = "http://127.0.0.1:9"  # the other origin's URL

    def __init__(self):
        super().__init__(Starlette(routes=[
            *(Route(path, self.fixed) for path in PAGES),
            Route("/moved", lambda request: RedirectResponse("/", 301)),
            Route("/gone", lambda request: HTMLResponse("<title>Gone</title>", 404)),
            Route("/robots.txt", lambda request: PlainTextResponse(
                "User-agent: *\nDisallow: /blocked/\n\nSitemap: /sitemap.xml\n")),
            Route("/sitemap.xml", self.sitemap),
        ]))

    async def fixed(self, request):
        path = request.url.path
        headers = {"X-Robots-Tag": "nofollow"} if path == "/header-nofollow" else None
        return HTMLResponse(PAGES[path].replace("ELSEWHERE", self.elsewhere), headers=headers)

    def sitemap(self, request):
        urls = "".join(f"<url><loc>{request.base_url}{path.lstrip('/')}</loc>"
                       + (f"<lastmod>{LASTMOD[path]}</lastmod>" if path in LASTMOD else "") + "</url>"
                       for path in SITEMAP)
        return Response(f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/'
                        f'sitemap/0.9">{urls}</urlset>', media_type="application/xml")


class OtherSite(NotedSite):
    "Another origin: /fine answers GET but refuses HEAD (405), anything else is a 404."

    def __init__(self):
        async def answer(request):
            self.requests_made.append((request.method, request.url.path))
            if request.url.path != "/fine": return HTMLResponse("<title>Not here</title>", 404)
            return Response(status_code=405) if request.method == "HEAD" else HTMLResponse("<title>Fine</title>")
        self.requests_made = []  # (method, path)
        super().__init__(Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "HEAD"])]))
