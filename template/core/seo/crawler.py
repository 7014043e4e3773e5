"""Crawls a site and audits it, the way an SEO crawler does, into a SQLite file of its own.

Plain Python over httpx, shared by the Site crawl workflow and notebooks/site_crawl.ipynb:

    crawl = Crawl(CRAWLS_DIR / "example.db", Settings(start="https://example.com/", max_pages=500))
    await crawl.run(on_progress=show)  # show(progress) after every page; run() again resumes where it stopped
    crawl.findings()                   # [(Finding, how many pages)]
    pandas.read_sql("SELECT * FROM page", crawl.db)

How it goes: from the start URL and/or the site's sitemaps (a sitemap index and gzipped sitemaps included), page by
page within the same site (host and port), breadth first, to a depth and a page limit. robots.txt is fetched first
and obeyed for the user agent chosen (protego, the parser Scrapy uses), Crawl-delay included. At most `concurrency`
requests are out at once, each request to a host waits `delay` seconds after the one before, each has a timeout
and reads at most `max_size` bytes (unpacked: fetching.py reads every body with a cap). Redirects are not followed blindly: each hop is a page of its own, with its
code, so a chain or a loop is the walk from one page to the next (chain()).

Every URL is a row of the `page` table the moment it is found, with its state: queued (the frontier), sitemap
(found in a sitemap only: fetched after the links), done, blocked (robots.txt), beyond (deeper than the limit).
A page's results, its links and the in-link counts they raise are written in one transaction, so a crawl stopped
at any moment (a cancel, a restart, kill -9) resumes from the frontier in the file and fetches nothing twice.
Memory stays flat however large the site: only the pages at work are held.

HTML is parsed with selectolax (Lexbor, an HTML5 parser: the same tree a browser builds), one page at a time in a
process of the crawl's own (Lexbor keeps the GIL: in a thread, a page of tiny tags held the app's event loop for
0.5 s), so a huge page never stalls the app; sitemaps with the standard library's streaming XML parser in a thread, read whole first up to a size (a gzip bomb is refused at the cap), one that declares
entities refused unread. robots.txt is read up to 500 KB, as Google does. Each fetch has a total time, not a time per
read: a body that trickles in ends at the timeout. stop() ends the crawl within a second, whatever it is waiting for.

What the crawler will not fetch or follow is never the end of the crawl: a redirect to javascript:, one more than
url_checker.MAX_REDIRECTS in a row, a link to a bad port, a sitemap too large or unsafe, an unreadable robots.txt each get a sentence in `refused`, on the page where
they were met (robots.txt and sitemaps are rows of their own, state refused), and the "refused" finding counts them.
No URL keeps its user:password@: they are dropped before a URL is stored, shown or followed.
"""

import asyncio
import re
import time
from datetime import datetime
from pathlib import Path

import httpx

from core.seo import link_check, rendering, validation
# The crawl's API, with Crawl: the app, the notebooks and ./run crawl import these from here.
from core.seo.crawl_file import CRAWLS_DIR, USER_AGENT, Settings, keep_findings
from core.seo.fetching import ACCEPT_ENCODING, Refused, Turns, read_body, set_location_aside, why_failed
from core.seo.frontier import Frontier
from core.seo.parsing import Parsed, ParsingProcess, in_site, link_in_site
from core.seo.url_checker import MAX_REDIRECTS, REDIRECT_CODES, redirect_target

STOP_GRACE = 0.5  # seconds stop() gives the pages at work to finish; the others stay queued
PROGRESS_EVERY = 0.25  # seconds between two progress reports


def noindex(directives: str | None) -> bool:
    return bool(directives) and bool(re.search(r"\b(noindex|none)\b", directives.lower()))


def indexability(url: str, status: int | None, html: bool, meta_robots, x_robots_tag, canonical) -> str:
    "Why search engines would not index the page; empty when they would."
    if status != 200: return f"HTTP {status}" if status else "no answer"
    if not html: return "not HTML"
    if noindex(meta_robots): return "noindex in the meta robots tag"
    if noindex(x_robots_tag): return "noindex in the X-Robots-Tag header"
    if canonical and canonical != url: return "canonical points elsewhere"
    return ""


def refusal(redirect: str | None, links: list[str]) -> str | None:
    "What a page leads to that the crawler will not follow, as one note: its redirect, its links (the first three)."
    if links:
        more = f" and {len(links) - 3:,} more" if len(links) > 3 else ""
        links = [f"{len(links):,} link{'s' if len(links) > 1 else ''} not followed: {'; '.join(links[:3])}{more}"]
    return " · ".join(filter(None, [redirect, *links])) or None


async def fetch(client: httpx.AsyncClient, url: str, timeout: float, max_size: int) -> dict:
    """The answer to one GET within the timeout, its body (HTML only) read up to max_size bytes unpacked; a
    failure is in 'error', a redirect that will not be followed in 'refused'."""
    found = {"status": None, "error": None, "redirect_to": None, "content_type": None, "html": False,
             "size": None, "truncated": False, "x_robots_tag": None, "body": b"", "encoding": "utf-8",
             "refused": None}
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout), client.stream("GET", url) as response:
            content_type = response.headers.get("content-type", "")
            found |= {"status": response.status_code, "content_type": content_type.split(";")[0].strip() or None,
                      "x_robots_tag": ", ".join(response.headers.get_list("x-robots-tag")) or None,
                      "encoding": response.charset_encoding or "utf-8"}
            try: found["redirect_to"] = redirect_target(response)
            except Refused as why:
                found["refused"] = f"Its redirect is not followed: {why}"
            length = response.headers.get("content-length")
            found["size"] = int(length) if length and length.isdigit() else None
            if "html" in content_type and response.status_code not in REDIRECT_CODES:
                found["html"] = True
                found["body"], found["truncated"] = await read_body(response, max_size)
                found["size"] = found["size"] or len(found["body"])
    except TimeoutError:
        found["error"] = f"Timed out after {timeout:g} s"
    except Refused as why:
        found["error"] = f"Not read: {why}"
    except httpx.HTTPError as error:
        found["error"] = why_failed(error)
    found["seconds"] = round(time.perf_counter() - started, 3)
    return found


class Crawl(Frontier):
    """One crawl, kept in its own SQLite file (crawl_file.py) with its frontier (frontier.py). Crawl(path, settings)
    starts one in a new file (the settings are kept in it); Crawl(path) opens the one there, to resume or read."""

    def __init__(self, path: Path, settings: Settings | None = None):
        super().__init__(path, settings)
        self.stop_asked = asyncio.Event()

    # --- running
    def stop(self):
        """Ends the crawl within a second: the pages at work get STOP_GRACE seconds to finish, the others stay
        queued (fetched again on a resume), and a robots.txt or sitemap still arriving is dropped."""
        self.stop_asked.set()

    async def run(self, on_progress=None):
        """Crawls until the frontier is empty, the page limit is reached or stop() is called; resumes a crawl the
        file already has. on_progress, an async function, gets a Progress after every page."""
        settings = self.settings
        self.stop_asked = asyncio.Event()  # of this run's event loop
        self.forget_findings()
        self.record(status="crawling", started=self.db.execute("SELECT started FROM crawl").fetchone()[0]
                    or datetime.now().isoformat(timespec="seconds"))
        limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
        parser = ParsingProcess()
        self.renderer = rendering.Renderer(settings.user_agent, settings.timeout) if settings.render_js else None
        self.turns = Turns()  # the hosts' requests' queues for wait_turn, in this run's event loop
        headers = {"User-Agent": settings.user_agent, "Accept-Encoding": ACCEPT_ENCODING}
        try:
            # Made in a thread: loading the certificates takes the event loop's time otherwise (0.1 to 1 s).
            async with await asyncio.to_thread(httpx.AsyncClient, headers=headers, limits=limits,
                                               timeout=settings.timeout, follow_redirects=False,
                                               event_hooks={"response": [set_location_aside]}) as client:
                self.client, self.parser = client, parser
                if self.renderer: await self.renderer.start()
                ended = await self.crawl(on_progress, self.seeding())
        finally:
            await parser.close()
            if self.renderer: await self.renderer.close()
        await validation.check_crawl(self.path, settings.near_duplicates)
        if settings.check_external and ended != "stopped":
            await link_check.check(self.db, settings, self.stop_asked.is_set)
        await asyncio.to_thread(keep_findings, self.path)
        self.record(status=ended, finished=datetime.now().isoformat(timespec="seconds"))
        return self.progress()

    async def first_done(self, tasks) -> set[asyncio.Task]:
        "Waits until one of the tasks is done, or stop() is called; returns the tasks done."
        stop = asyncio.ensure_future(self.stop_asked.wait())
        try: finished, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
        finally: stop.cancel()
        return finished - {stop}

    async def crawl(self, on_progress, seeding: asyncio.Task | None) -> str:
        """Fetches the frontier, breadth first, with at most `concurrency` pages at work, while the seeding (if any)
        goes on; returns how it ended."""
        at_work: dict[asyncio.Task, int] = {}
        fetched, told, every, last = self.progress().done, 0.0, PROGRESS_EVERY, ""
        try:
            while True:
                if self.stop_asked.is_set():
                    if at_work: await asyncio.wait(at_work, timeout=STOP_GRACE)  # the rest stay queued
                    return "stopped"
                room = min(self.settings.concurrency - len(at_work), self.settings.max_pages - fetched - len(at_work))
                if room > 0:
                    for row in self.next_pages(room, list(at_work.values())):
                        at_work[asyncio.create_task(self.visit(row["id"], row["url"], row["depth"]))] = row["id"]
                if seeding and seeding.done():
                    seeding = seeding.result()  # None, or its error
                if not at_work:
                    if seeding:  # the sitemaps may bring pages yet
                        await self.first_done([seeding])
                        continue
                    if self.promote_sitemap_pages(): continue
                    if fetched >= self.settings.max_pages and self.next_pages(1, []): return "limit"
                    return "done"
                for task in await self.first_done(at_work):
                    del at_work[task]
                    last = task.result()
                    fetched += bool(last)
                # Counting the pages costs a query, longer as they grow (0.1 s at 100,000): the progress is told at
                # most every PROGRESS_EVERY seconds, and at most 5 % of the time goes to counting.
                if on_progress and time.monotonic() - told >= every:
                    counted = time.monotonic()
                    progress = self.progress(last)
                    every = max(PROGRESS_EVERY, 20 * (time.monotonic() - counted))
                    await on_progress(progress)
                    told = time.monotonic()
        finally:
            pending = [*at_work, *filter(None, [seeding])]
            for task in pending: task.cancel()
            if pending: await asyncio.wait(pending)

    # --- one page
    async def visit(self, page_id: int, url: str, depth: int) -> str:
        "Fetches one queued page (unless robots.txt forbids it) and keeps what it found; returns 'url status'."
        target = httpx.URL(url)
        rules = await self.rules(target)
        if rules is not None and not rules.can_fetch(url, self.settings.user_agent):
            self.db.execute("UPDATE page SET state = 'blocked', not_indexable_why = 'blocked by robots.txt', "
                            "indexable = 0 WHERE id = ?", [page_id])
            return ""
        await self.wait_turn(target.host)
        found = await fetch(self.client, url, self.settings.timeout, self.settings.max_size)
        body, encoding = found.pop("body"), found.pop("encoding")
        parsed = await self.parse(body, encoding, url) if found["html"] else None
        if parsed and self.renderer and found["status"] == 200:
            parsed = await self.rendered(url, body, found["content_type"], parsed)
        self.keep(page_id, url, depth, found, parsed)
        return f"{url} ({found['status'] or found['error']})"

    async def parse(self, body: bytes, encoding: str, url: str) -> Parsed:
        return await self.parser.parse(body, encoding, url, self.settings.near_duplicates > 0, self.settings.extract)

    async def rendered(self, url: str, body: bytes, content_type: str, served: Parsed) -> Parsed:
        "The page as Chromium renders it, compared with the HTML served; that HTML, with why, if it cannot be."
        try: final_url, html = await self.renderer.html(url, body, content_type)
        except Exception as error:  # noqa: BLE001 -- Playwright's errors and timeouts: the page stays as served
            served.columns["render_error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
            return served
        return rendering.compared(served, await self.parse(html.encode(), "utf-8", url), url, final_url)

    def keep(self, page_id: int, url: str, depth: int, found: dict, parsed: Parsed | None):
        "A fetched page's results, the URLs it leads to and its links, in one transaction."
        parsed = parsed or Parsed()
        internal, external = {}, set()
        for link, followed in parsed.links:
            if link == url: continue
            if link_in_site(link, self.site): internal[link] = internal.get(link, False) or followed
            else: external.add(link)
        why = indexability(url, found["status"], found["html"], parsed.meta_robots, found["x_robots_tag"],
                           parsed.canonical) if found["error"] is None else found["error"]
        hop = found["redirect_to"] and in_site(httpx.URL(found["redirect_to"]), self.site)
        if hop and self.redirects_to(page_id) >= MAX_REDIRECTS:  # an endless chain, each hop a new URL
            hop, found["refused"] = False, f"Its redirect is not followed: more than {MAX_REDIRECTS} redirects"
        with self.db:  # BEGIN ... COMMIT: all of it or, if anything fails, none of it
            self.db.execute("BEGIN")
            if hop: self.add_urls([found["redirect_to"]], depth, "queued", page_id)  # a hop is no click: same depth
            # A page only a sitemap names has no depth (no click leads to it), nor do the pages it links to.
            below = None if depth is None else depth + 1
            within = depth is None or depth < self.settings.max_depth
            followed = [link for link, follow in internal.items() if follow]
            self.add_urls(followed, below, "queued" if within else "beyond", page_id)
            self.add_urls([link for link, follow in internal.items() if not follow], below, "beyond", page_id)
            self.link(page_id, list(internal))
            link_check.keep(self.db, page_id, external)
            self.db.execute(
                "UPDATE page SET state = 'done', status = ?, error = ?, redirect_to = ?, content_type = ?, html = ?, "
                "size = ?, truncated = ?, seconds = ?, title = ?, description = ?, canonical = ?, meta_robots = ?, "
                "x_robots_tag = ?, h1_count = ?, h1 = ?, hreflang = ?, words = ?, outlinks = ?, external_links = ?, "
                "indexable = ?, not_indexable_why = ?, crawled = ?, refused = ?"
                + "".join(f", {column} = ?" for column in parsed.columns) + " WHERE id = ?",
                [found["status"], found["error"], found["redirect_to"], found["content_type"], int(found["html"]),
                 found["size"], int(found["truncated"]), found["seconds"], parsed.title, parsed.description,
                 parsed.canonical, parsed.meta_robots, found["x_robots_tag"],
                 len(parsed.h1) if found["html"] else None, " | ".join(parsed.h1) or None,
                 "\n".join(parsed.hreflang) or None, parsed.words if found["html"] else None, len(internal),
                 len(external), int(not why), why or None, datetime.now().isoformat(timespec="seconds"),
                 refusal(found["refused"], parsed.refused), *parsed.columns.values(), page_id])
