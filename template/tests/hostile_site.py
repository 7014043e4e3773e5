"""A local site that attacks its crawler, for the tests of bounded fetching (tests/test_server_hostile_crawl.py).

HostileSite, from / : a home page linking to every trap below, and /after, a plain page (linking nowhere) to show the
crawl goes on.
  pages: /bomb (a BOMB-byte page as a few KB of Content-Encoding: gzip), /endless (a body that never ends),
         /trickle (a byte every TRICKLE seconds, for ever)
  redirects the crawler cannot follow: /to-javascript, /to-data, /to-bad-port
  more redirects: /hops/N (to /hops/N+1, for ever), /redirect-bomb (to /after, its body a gzip bomb)
  links: javascript:, and /credentials: to /with-credentials and another host with user:secret@, and its rel=next to
         /with-credentials with them (the page notes any Authorization it is asked with)
  sitemaps: /sitemap-bomb.xml.gz (a gzip file), /sitemap-encoded.xml (the bomb as Content-Encoding), /sitemap-laughs.xml
            (billion laughs), /sitemap-external.xml (an external entity), /sitemap-endless.xml,
            /sitemap-trickle.xml
  robots.txt as `robots` says: "none" (404), "huge" (endless), "trickle", "bomb" (Content-Encoding gzip), "down" (503),
              "credentials" (a Sitemap line to /with-credentials with user:secret@)
"""

import asyncio
import zlib
from functools import cache

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from local_site import NotedSite, page

BOMB = 64 * 1024 * 1024  # bytes a bomb unpacks to: far past every limit the tests set, a few KB on the wire
TRICKLE = 0.2  # seconds between two bytes of a trickling body
SITEMAP = '<?xml version="1.0" encoding="UTF-8"?>{doctype}<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
LAUGHS = ('<!DOCTYPE urlset [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
          '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
          '<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">'
          '<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>')
EXTERNAL = '<!DOCTYPE urlset [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
HOME_LINKS = ["/bomb", "/endless", "/trickle", "/to-javascript", "/to-data", "/to-bad-port", "javascript:alert(1)",
              "/after"]


@cache
def gzip_bomb(head: bytes, tail: bytes) -> bytes:
    """head, BOMB spaces, tail, as a gzip file of a few KB. Made quickly: a megabyte of spaces is compressed once,
    after a full flush (so it stands alone), and repeated."""
    packer, spaces = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS), b" " * (1024 * 1024)
    start = packer.compress(head) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(spaces) + packer.flush(zlib.Z_FULL_FLUSH)
    end = packer.compress(tail) + packer.flush()
    crc, count = zlib.crc32(head), BOMB // len(spaces)
    for _ in range(count): crc = zlib.crc32(spaces, crc)
    crc, length = zlib.crc32(tail, crc), len(head) + count * len(spaces) + len(tail)
    return b"".join([b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", start, block * count, end,
                     crc.to_bytes(4, "little"), (length % 2**32).to_bytes(4, "little")])


async def trickle():
    while True:
        yield b"x"
        await asyncio.sleep(TRICKLE)


async def endless(line: bytes):
    while True:
        yield line * 1024
        await asyncio.sleep(0)


class HostileSite(NotedSite):
    def __init__(self):
        self.robots = "none"
        self.authorizations = []  # the Authorization headers /with-credentials was asked with
        redirects = {"/to-javascript": "javascript:alert(1)", "/to-data": "data:text/html,<script>alert(1)</script>",
                     "/to-bad-port": "http://127.0.0.1:99999/"}
        super().__init__(Starlette(routes=[
            Route("/", self.home), Route("/after", lambda request: HTMLResponse(page("After"))),
            Route("/credentials", self.credentials), Route("/with-credentials", self.with_credentials),
            Route("/bomb", lambda request: self.bomb(b"<!doctype html><title>Bomb</title><p>", b"</p>", "text/html")),
            Route("/endless", lambda request: StreamingResponse(endless(b"<p>more</p>"), media_type="text/html")),
            Route("/trickle", lambda request: StreamingResponse(trickle(), media_type="text/html")),
            *(Route(path, lambda request, to=to: RedirectResponse(to, 302)) for path, to in redirects.items()),
            Route("/redirect-bomb", lambda request: self.bomb(b"<p>", b"</p>", "text/html", {"Location": "/after"},
                                                               302), methods=["GET", "HEAD"]),
            Route("/hops/{n:int}", lambda request: RedirectResponse(f"/hops/{request.path_params['n'] + 1}", 302),
                  methods=["GET", "HEAD"]),
            Route("/robots.txt", self.robots_txt),
            Route("/sitemap-bomb.xml.gz", lambda request: Response(self.sitemap_bomb(request),
                                                                   media_type="application/gzip")),
            Route("/sitemap-encoded.xml", lambda request: Response(
                self.sitemap_bomb(request), headers={"Content-Encoding": "gzip"}, media_type="application/xml")),
            Route("/sitemap-laughs.xml", lambda request: self.sitemap(request, LAUGHS, "&h;")),
            Route("/sitemap-external.xml", lambda request: self.sitemap(request, EXTERNAL, "&x;")),
            Route("/sitemap-endless.xml", self.sitemap_endless),
            Route("/sitemap-trickle.xml", lambda request: StreamingResponse(trickle(), media_type="application/xml")),
        ]))

    def home(self, request): return HTMLResponse(page("Home", *HOME_LINKS, "/credentials"))

    def credentials(self, request):
        with_them = f"http://user:secret@{request.url.netloc}/with-credentials"
        return HTMLResponse(page("Credentials", with_them, "http://user:secret@elsewhere.example/",
                                 head=f'<link rel="next" href="{with_them}">'))

    def with_credentials(self, request):
        self.authorizations.append(request.headers.get("authorization"))
        return HTMLResponse(page("With credentials", "/"))

    @staticmethod
    def bomb(head: bytes, tail: bytes, media_type: str, headers=None, status: int = 200) -> Response:
        return Response(gzip_bomb(head, tail), status, {"Content-Encoding": "gzip"} | (headers or {}), media_type)

    def urls(self, request) -> str:
        return f"<url><loc>{request.base_url}after</loc></url>"

    def sitemap(self, request, doctype: str, entity: str) -> Response:
        return Response(SITEMAP.format(doctype=doctype) + f"<url><loc>{request.base_url}after{entity}</loc></url>"
                        "</urlset>", media_type="application/xml")

    def sitemap_bomb(self, request) -> bytes:
        return gzip_bomb((SITEMAP.format(doctype="") + self.urls(request)).encode(), b"</urlset>")

    def sitemap_endless(self, request):
        async def body():
            yield (SITEMAP.format(doctype="")).encode()
            async for urls in endless(self.urls(request).encode()): yield urls
        return StreamingResponse(body(), media_type="application/xml")

    def robots_txt(self, request):
        if self.robots == "huge": return StreamingResponse(endless(b"Disallow: /nothing/\n"), media_type="text/plain")
        if self.robots == "trickle": return StreamingResponse(trickle(), media_type="text/plain")
        if self.robots == "bomb": return self.bomb(b"User-agent: *\n", b"\nDisallow: /after\n", "text/plain")
        if self.robots == "down": return PlainTextResponse("Down for maintenance", 503)
        if self.robots == "credentials":
            return PlainTextResponse(f"Sitemap: http://user:secret@{request.url.netloc}/with-credentials\n")
        return PlainTextResponse("Not found", 404)
