"""A page's HTML as the crawl reads it: its SEO facts, its links, its MinHash and a custom extraction's fields
(parse_page), in a process of the crawl's own (ParsingProcess): selectolax's Lexbor keeps the GIL, so in a thread a
page of tiny tags held the app's event loop for half a second."""

import asyncio
import json
import pickle
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from selectolax.lexbor import LexborHTMLParser

from core.seo import extraction, onpage, validation
from core.seo.fetching import Refused, web_url


def in_site(url: httpx.URL, site: httpx.URL) -> bool:
    return url.scheme in ("http", "https") and url.host == site.host and url.port == site.port


def link_in_site(link: str, site: httpx.URL) -> bool:
    """in_site for a link as parse_page gives it (written by httpx: host lower-cased and IDNA-encoded, no default
    port), read by urlsplit: parsing every link of every page again with httpx took five times as long."""
    parts = urlsplit(link)
    return (parts.scheme in ("http", "https") and parts.hostname == site.raw_host.decode("ascii")
            and parts.port == site.port)


def absolute(href: str, base: httpx.URL) -> httpx.URL | None:
    "A link's absolute URL (see fetching.web_url); None for one there is nothing to follow, or that cannot be."
    try: return web_url(href, base)
    except Refused: return None


@dataclass
class Parsed:
    "What a page says about itself."
    title: str | None = None
    description: str | None = None
    canonical: str | None = None
    meta_robots: str | None = None
    h1: list[str] = field(default_factory=list)
    hreflang: list[str] = field(default_factory=list)  # "lang url"
    words: int = 0
    links: list[tuple[str, bool]] = field(default_factory=list)  # (absolute URL, followed)
    refused: list[str] = field(default_factory=list)  # the links that cannot be followed, each with why
    columns: dict = field(default_factory=dict)  # the audit's columns (onpage.py, validation.py) and their values


def attribute(node, name: str) -> str | None:
    return node.attributes.get(name) if node is not None else None


def parse_page(body: bytes, encoding: str, url: str, minhash: bool = True, extract: dict | None = None) -> Parsed:
    """The SEO facts of an HTML page, its MinHash (for near-duplicates, unless told not) and the fields of a custom
    extraction: run in the parsing process."""
    try: text = body.decode(encoding, errors="replace")
    except LookupError: text = body.decode("utf-8", errors="replace")
    tree = LexborHTMLParser(text)
    title_node = tree.css_first("title")
    base = httpx.URL(url)
    if (base_href := attribute(tree.css_first("base[href]"), "href")) and (found := absolute(base_href, base)):
        base = found
    canonical = attribute(tree.css_first("link[rel~=canonical i][href]"), "href")
    canonical_url = absolute(canonical, base) if canonical else None
    robots = attribute(tree.css_first("meta[name=robots i]"), "content")
    follow = "nofollow" not in (robots or "").lower() and "none" not in (robots or "").lower()
    links, refused = [], []
    for anchor in tree.css("a[href], area[href]"):
        try: target = web_url(anchor.attributes.get("href") or "", base)
        except Refused as why:
            refused.append(str(why))
            continue
        if target:
            links.append((str(target), follow and "nofollow" not in (anchor.attributes.get("rel") or "").lower()))
    title = " ".join(title_node.text().split()) if title_node is not None else None
    description = " ".join((attribute(tree.css_first("meta[name=description i]"), "content") or "").split()) or None
    # before the scripts go: JSON-LD is in them, and an extraction may read them too
    facts = onpage.facts(tree, base, title, description) | extraction.extract(tree, extract or {})
    words = []
    if tree.body is not None:
        for hidden in tree.body.css("script, style, noscript, template, svg"): hidden.decompose()
        words = tree.body.text(separator=" ").split()
    return Parsed(
        title=title, description=description, canonical=str(canonical_url) if canonical_url else None,
        meta_robots=robots,
        h1=[" ".join(h1.text(separator=" ").split()) for h1 in tree.css("h1")],
        hreflang=[f"{link.attributes.get('hreflang')} {absolute(link.attributes.get('href'), base) or ''}"
                  for link in tree.css("link[rel~=alternate i][hreflang][href]")],
        words=len(words), links=links, refused=refused,
        columns=facts | {"minhash": validation.signature(words) if minhash else None})


class ParsingProcess:
    """parse_page in a process of its own (`python -m core.seo.parsing`), one page at a time. A page is sent as a
    JSON line (its size, encoding, URL, whether to MinHash it and the fields to extract) and its bytes; its Parsed
    comes back as a pickled dict (its MinHash is bytes), after its size (8 bytes). A parse cut short (a stop) ends
    the process, and the next parse starts another."""

    def __init__(self):
        self.process, self.turn, self.ended = None, asyncio.Lock(), []

    async def parse(self, body: bytes, encoding: str, url: str, minhash: bool, extract: dict) -> Parsed:
        async with self.turn:
            if self.process is None:
                self.process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "core.seo.parsing", cwd=Path(__file__).parents[2],  # the fork's root
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            try:
                header = json.dumps([len(body), encoding, url, minhash, extract]).encode()
                self.process.stdin.write(header + b"\n" + body)
                await self.process.stdin.drain()
                size = int.from_bytes(await self.process.stdout.readexactly(8), "big")
                return Parsed(**pickle.loads(await self.process.stdout.readexactly(size)))  # from our own process
            except BaseException:
                self.process.kill()  # mid-page: what it would answer next is no longer known
                self.ended.append(self.process)
                self.process = None
                raise

    async def close(self):
        "Ends the process (at once: a crawl cancelled waits for no page), and every one this parser ended."
        if self.process is not None:
            self.process.kill()
            self.ended.append(self.process)
        for process in self.ended: await process.wait()


def parse_stdin():
    "python -m core.seo.parsing: parses the pages sent on stdin (see ParsingProcess), until stdin ends."
    while header := sys.stdin.buffer.readline():
        size, encoding, url, minhash, extract = json.loads(header)
        parsed = pickle.dumps(asdict(parse_page(sys.stdin.buffer.read(size), encoding, url, minhash, extract)))
        sys.stdout.buffer.write(len(parsed).to_bytes(8, "big") + parsed)
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    parse_stdin()
