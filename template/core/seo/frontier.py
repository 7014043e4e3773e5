"""A crawl's frontier: which page is fetched next, kept in the crawl's file as each page row's state (queued; sitemap:
found in a sitemap only, fetched after the links; beyond: deeper than the limit). It is seeded from the start URL and
the sitemaps (the ones given, or robots.txt's), grows with the links of each page fetched, and keeps each origin's
robots.txt rules and each host's turns."""

import asyncio
import sqlite3
from pathlib import Path

import httpx
from protego import Protego

from core.seo import sitemaps
from core.seo.crawl_file import CrawlFile, Settings
from core.seo.fetching import Refused, Turns, get_robots, why_failed
from core.seo.parsing import absolute, in_site


class Frontier(CrawlFile):
    """A crawl's file with its frontier."""

    def __init__(self, path: Path, settings: Settings | None = None):
        super().__init__(path, settings)
        self.robots: dict[str, Protego | None] = {}  # origin -> its rules (None: it has none)

    # What a running crawl gives it (crawler.Crawl.run).
    client: httpx.AsyncClient
    turns: Turns

    def next_pages(self, count: int, at_work: list[int]) -> list[sqlite3.Row]:
        marks = ", ".join("?" * len(at_work))
        return self.db.execute(f"SELECT id, url, depth FROM page WHERE state = 'queued' AND id NOT IN ({marks}) "
                               "ORDER BY depth, id LIMIT ?", [*at_work, count]).fetchall()

    def promote_sitemap_pages(self) -> bool:
        "Once the links are all followed, the pages only the sitemaps name are next. False when there are none."
        return self.db.execute("UPDATE page SET state = 'queued' WHERE state = 'sitemap'").rowcount > 0

    # --- robots.txt and politeness
    async def rules(self, url: httpx.URL) -> Protego | None:
        """The robots.txt rules of the URL's origin, fetched once (see fetching.get_robots). A missing robots.txt
        allows everything; so does one that fails, and the crawl's refusals say so."""
        origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
        if origin not in self.robots:
            self.robots[origin], robots = None, f"{origin}/robots.txt"
            try:
                await self.wait_turn(url.host)
                text, note = await get_robots(self.client, robots, self.settings.timeout)
                if text is not None: self.robots[origin] = await asyncio.to_thread(Protego.parse, text)
            except asyncio.CancelledError:
                del self.robots[origin]  # not read: a resume asks again
                raise
            if note: self.refuse(robots, f"{note}: the crawl went on as if it allowed every page")
        return self.robots[origin]

    async def wait_turn(self, host: str):
        """Waits until a request to the host may start: `delay` (or robots.txt's Crawl-delay) after the one before
        started. The host's requests take their turns one at a time, so a turn that woke late delays the next."""
        rules = self.robots.get(f"{self.site.scheme}://{self.site.netloc.decode('ascii')}")
        delay = max(self.settings.delay, (rules.crawl_delay(self.settings.user_agent) or 0) if rules else 0)
        await self.turns.wait(host, delay)

    # --- seeding: the start URL and the sitemaps
    def seeding(self) -> asyncio.Task | None:
        """Seeds the frontier in the background (None: a crawl resumed after its seeding): the start URL at once,
        the sitemaps' URLs as they are read, so the first pages are crawled while a big sitemap is still arriving
        (92,000 URLs took 13 s). A crawl stopped before its seeding ends seeds again when it resumes."""
        if self.db.execute("SELECT seeded FROM crawl").fetchone()[0]: return None
        if self.settings.start: self.add_urls([self.settings.start], depth=0, state="queued")
        return asyncio.ensure_future(self.seed())

    async def seed(self):
        start, settings = self.settings.start, self.settings
        listed, guessed = list(settings.sitemaps), None
        if settings.robots_sitemaps and not listed:
            rules = await self.rules(self.site)
            listed = sitemaps.from_robots(list(rules.sitemaps) if rules else [], str(self.site.join("/robots.txt")))
            if not listed: listed = [guessed := str(self.site.join("/sitemap.xml"))]
        found = await self.sitemap_urls(listed, guessed)
        self.add_urls(list(found), depth=None if start else 0, state="sitemap" if start else "queued", in_sitemap=True)
        self.db.executemany("UPDATE page SET lastmod = ?, lastmod_problem = ? WHERE url = ?",
                            [(lastmod, sitemaps.lastmod_problem(lastmod), url)
                             for url, lastmod in found.items() if lastmod])
        self.record(seeded=1, note=f"{len(found):,} URLs in the sitemaps" if found else None)

    async def sitemap_urls(self, listed: list[str], guessed: str | None = None) -> dict[str, str | None]:
        """The page URLs of these sitemaps within the site, each with its lastmod, nested indexes followed, within the
        settings' counts. A sitemap that cannot be read is refused, with why (but for a guessed /sitemap.xml that is
        not there)."""
        settings, pages, seen, todo = self.settings, {}, set(), list(listed)
        while todo and len(pages) < settings.max_sitemap_urls:
            url = todo.pop(0)
            if url in seen: continue
            if len(seen) >= settings.max_sitemaps:
                self.refuse(url, f"Not read: the sitemaps list more than {settings.max_sitemaps:,} sitemaps")
                break
            seen.add(url)
            try: kind, locations = await self.read_sitemap(url)
            except TimeoutError:
                self.refuse(url, f"The sitemap did not arrive within {settings.timeout * 3:g} s: its pages were "
                                 "not read")
                continue
            except (httpx.HTTPError, Refused) as error:
                if url != guessed: self.refuse(url, f"The sitemap was not read ({why_failed(error)})")
                continue
            found = [(target, lastmod) for location, lastmod in locations
                     if (target := absolute(location, httpx.URL(url)))]
            if kind == "sitemapindex": todo += [str(target) for target, _ in found]
            else: pages.update((str(target), lastmod) for target, lastmod in found if in_site(target, self.site))
            if len(pages) > settings.max_sitemap_urls or len(locations) >= settings.max_sitemap_urls:
                self.refuse(url, f"The sitemaps list more than {settings.max_sitemap_urls:,} URLs: the rest were "
                                 "left")
        return dict(list(pages.items())[:settings.max_sitemap_urls])

    async def read_sitemap(self, url: str) -> tuple[str, list[tuple[str, str | None]]]:
        "(urlset or sitemapindex, each <loc> with its <lastmod>) of one sitemap, in its turn (sitemaps.get_sitemap)."
        await self.wait_turn(httpx.URL(url).host)
        return await sitemaps.get_sitemap(self.client, url, self.settings.max_sitemap_size, self.settings.timeout * 3,
                                 self.settings.max_sitemap_urls)

    # --- what a page leads to
    def add_urls(self, urls, depth: int | None, state: str, found_on: int | None = None, in_sitemap=False):
        """Adds URLs to the frontier, or brings a known one nearer: a URL seen only in a sitemap, or past the depth
        limit, is queued once a link leads to it within the limit."""
        self.db.executemany(
            "INSERT INTO page (url, depth, state, found_on, in_sitemap) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (url) DO UPDATE SET in_sitemap = max(in_sitemap, excluded.in_sitemap), "
            "depth = CASE WHEN excluded.state = 'queued' AND (state IN ('sitemap', 'beyond') OR "
            "  (state = 'queued' AND excluded.depth < depth)) THEN excluded.depth ELSE depth END, "
            "found_on = CASE WHEN excluded.state = 'queued' AND state IN ('sitemap', 'beyond') "
            "  THEN excluded.found_on ELSE found_on END, "
            "state = CASE WHEN excluded.state = 'queued' AND state IN ('sitemap', 'beyond') THEN 'queued' "
            "  ELSE state END",
            [(url, depth, state, found_on, int(in_sitemap)) for url in urls])

    def link(self, source: int, urls: list[str]):
        "Keeps the links from source to these known URLs; each new one raises its target's in-link count."
        for start in range(0, len(urls), 500):
            chunk = urls[start:start + 500]
            targets = [row[0] for row in self.db.execute(
                f"SELECT id FROM page WHERE url IN ({', '.join('?' * len(chunk))})", chunk)]
            new = [target for target in targets
                   if self.db.execute("INSERT OR IGNORE INTO link VALUES (?, ?)", [source, target]).rowcount]
            self.db.executemany("UPDATE page SET inlinks = inlinks + 1 WHERE id = ?", [(target,) for target in new])
