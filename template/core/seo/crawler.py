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
import json
import pickle
import re
import sqlite3
import sys
import time
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
from protego import Protego
from selectolax.lexbor import LexborHTMLParser

from core import config
from core.seo import extraction
from core.seo import link_check
from core.seo import onpage
from core.seo import rendering
from core.seo import sitemaps
from core.seo import validation
from core.exports import write_csv, write_xlsx
from core.seo.fetching import ACCEPT_ENCODING, Refused, Turns, get_robots, read_body, set_location_aside, web_url, why_failed
from core.seo.findings import BROKEN, CORE, CRAWLED, REDIRECTS, Finding
from core.seo.url_checker import MAX_REDIRECTS, REDIRECT_CODES, normal_url, redirect_target

CRAWLS_DIR = config.DATA_DIR / "crawls"
USER_AGENT = f"Mozilla/5.0 (compatible; {config.SLUG}-crawler/1.0)"
SITEMAP_LIMIT = 50 * 1024 * 1024  # bytes of one sitemap, unpacked: the sitemaps.org limit
SITEMAP_FILES = 200  # sitemaps read from one index (and its nested indexes) at most
SITEMAP_URLS = 100_000  # URLs taken from the sitemaps at most
STOP_GRACE = 0.5  # seconds stop() gives the pages at work to finish; the others stay queued
PROGRESS_EVERY = 0.25  # seconds between two progress reports
ENDINGS = {"done": "every page within the limits", "limit": "stopped at the page limit",
           "stopped": "stopped before the end"}


@dataclass
class Settings:
    start: str = ""  # the URL to start from; may be empty when there are sitemaps
    sitemaps: list[str] = field(default_factory=list)  # sitemap (or sitemap index) URLs
    robots_sitemaps: bool = True  # also the sitemaps robots.txt lists (or /sitemap.xml when it lists none)
    max_pages: int = 500  # pages fetched at most (robots.txt-blocked ones are not fetched, so not counted)
    max_depth: int = 10  # clicks from the start
    concurrency: int = 4  # requests at once
    delay: float = 0.25  # seconds between two requests to a host (robots.txt's Crawl-delay may ask for more)
    timeout: float = 10  # seconds for a page, body included
    max_size: int = 5 * 1024 * 1024  # bytes read of a page; the rest is left, and the page flagged
    user_agent: str = USER_AGENT  # sent with every request, and the one robots.txt is read for
    max_sitemap_size: int = SITEMAP_LIMIT  # bytes of one sitemap, unpacked: a larger one is refused
    max_sitemaps: int = SITEMAP_FILES
    max_sitemap_urls: int = SITEMAP_URLS
    near_duplicates: float = 0.9  # the similarity (0 to 1) from which two pages are near-duplicates; 0: not looked for
    check_external: bool = False  # once the crawl ends, ask each external link's URL (link_check.py)
    extract: dict[str, str] = field(default_factory=dict)  # custom extraction: field name -> selector (extraction.py)
    render_js: bool = False  # parse each HTML page as Chromium has it once its scripts ran (rendering.py)

    @classmethod
    def of_run(cls, site: dict, crawl: dict) -> "Settings":
        """The settings as a run of the Site crawl app keeps them, its two steps' values (the size cap in MB): the
        app and `./run crawl` both crawl with these."""
        return cls(**site, **{name: value for name, value in crawl.items() if name != "max_size_mb"},
                   max_size=int(crawl["max_size_mb"] * 1024 * 1024))

    def __post_init__(self):
        if self.start: self.start = normal_url(self.start)
        self.sitemaps = [normal_url(url) for url in self.sitemaps]
        if not (self.start or self.sitemaps): raise ValueError("give a start URL, a sitemap, or both")
        extraction.parse_fields(extraction.written(self.extract))  # a ValueError for a field it cannot extract
        if self.render_js and (why := rendering.unavailable()): raise ValueError(why)

    @property
    def site(self) -> httpx.URL:
        "The site crawled: the start URL's host and port, else the first sitemap's."
        return httpx.URL(self.start or self.sitemaps[0])


def plural(n: int, word: str) -> str: return f"{n:,} {word}{'' if n == 1 else 's'}"


@dataclass
class Progress:
    done: int = 0  # pages fetched
    queued: int = 0  # found and still to fetch
    errors: int = 0  # fetched pages that failed or answered 4xx/5xx
    blocked: int = 0  # by robots.txt
    last: str = ""  # the page fetched last, with its status

    def __str__(self):
        return (f"{plural(self.done, 'page')} crawled, {self.queued:,} queued, {plural(self.errors, 'error')}"
                + (f", {self.blocked:,} blocked by robots.txt" if self.blocked else "")
                + (f" · {self.last}" if self.last else ""))


SCHEMA = """
CREATE TABLE IF NOT EXISTS crawl (id INTEGER PRIMARY KEY CHECK (id = 1), settings TEXT NOT NULL, status TEXT NOT NULL,
    started TEXT, finished TEXT, seeded INTEGER NOT NULL DEFAULT 0, note TEXT);
CREATE TABLE IF NOT EXISTS page (
    id INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE, state TEXT NOT NULL, depth INTEGER, found_on INTEGER,
    in_sitemap INTEGER NOT NULL DEFAULT 0, status INTEGER, error TEXT, redirect_to TEXT, content_type TEXT,
    html INTEGER NOT NULL DEFAULT 0, size INTEGER, truncated INTEGER NOT NULL DEFAULT 0, seconds REAL, title TEXT,
    description TEXT, canonical TEXT, meta_robots TEXT, x_robots_tag TEXT, h1_count INTEGER, h1 TEXT,
    hreflang TEXT, words INTEGER, outlinks INTEGER, external_links INTEGER, inlinks INTEGER NOT NULL DEFAULT 0,
    indexable INTEGER, not_indexable_why TEXT, crawled TEXT, refused TEXT);
CREATE TABLE IF NOT EXISTS link (source INTEGER NOT NULL, target INTEGER NOT NULL, PRIMARY KEY (source, target))
    WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS link_target ON link (target);
CREATE INDEX IF NOT EXISTS page_frontier ON page (state, depth, id);
CREATE INDEX IF NOT EXISTS page_status ON page (status);
CREATE INDEX IF NOT EXISTS page_title ON page (title);
CREATE INDEX IF NOT EXISTS page_description ON page (description);
CREATE INDEX IF NOT EXISTS page_depth ON page (depth);
CREATE INDEX IF NOT EXISTS page_inlinks ON page (inlinks);
CREATE INDEX IF NOT EXISTS page_seconds ON page (seconds);
CREATE INDEX IF NOT EXISTS page_words ON page (words);
"""
PENDING = ("queued", "sitemap")
FINDINGS = CORE + sitemaps.FINDINGS + onpage.FINDINGS + validation.FINDINGS + link_check.FINDINGS + rendering.FINDINGS
FINDING = {finding.id: finding for finding in FINDINGS}

# The page table's columns for CSV and Excel, in order.
EXPORT_COLUMNS = ["url", "status", "redirect_to", "depth", "title", "description", "h1_count", "h1", "canonical",
                  "meta_robots", "x_robots_tag", "indexable", "not_indexable_why", "hreflang", "words", "inlinks",
                  "outlinks", "external_links", "in_sitemap", "content_type", "size", "truncated", "seconds", "error",
                  "refused", "state", "crawled", *onpage.COLUMNS, *sitemaps.COLUMNS, *validation.EXPORTED,
                  *rendering.COLUMNS]


def connect(path: Path) -> sqlite3.Connection:
    "A connection to a crawl's file, rows as sqlite3.Row; WAL, so the app reads it while the crawl writes."
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=5, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode = wal")
    db.execute("PRAGMA synchronous = normal")
    db.executescript(SCHEMA + link_check.SCHEMA)
    add_columns(db, sitemaps.COLUMNS | onpage.COLUMNS | validation.COLUMNS | rendering.COLUMNS | {"refused": "TEXT"})
    return db


def add_columns(db: sqlite3.Connection, columns: dict[str, str]):
    "Adds the page table's columns a crawl's file made by an older version lacks."
    have = {row["name"] for row in db.execute("PRAGMA table_info(page)")}
    for name, kind in columns.items():
        if name not in have: db.execute(f"ALTER TABLE page ADD COLUMN {name} {kind}")


def new_file(path: Path, settings: Settings):
    """Makes a new crawl's file under another name, then renames it into place: the app's pages open a crawl's file
    as soon as it is there, and two connections setting up one new file at once fail ("database is locked")."""
    part = path.with_name(f".{path.name}.part")
    with closing(connect(part)) as db:
        db.execute("INSERT OR REPLACE INTO crawl (id, settings, status) VALUES (1, ?, 'new')",
                   [json.dumps(asdict(settings))])
    part.replace(path)


def in_site(url: httpx.URL, site: httpx.URL) -> bool:
    return url.scheme in ("http", "https") and url.host == site.host and url.port == site.port


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
    """parse_page in a process of its own (`python -m core.seo.crawler`), one page at a time: Lexbor keeps the GIL, so in a
    thread a page of tiny tags held the app's event loop for half a second and more. A page is sent as a JSON line
    (its size, encoding, URL, whether to MinHash it and the fields to extract) and its bytes; its Parsed comes back as a pickled dict (its
    MinHash is bytes), after its size (8 bytes). A parse cut short (a stop)
    ends the process, and the next parse starts another."""

    def __init__(self):
        self.process, self.turn, self.ended = None, asyncio.Lock(), []

    async def parse(self, body: bytes, encoding: str, url: str, minhash: bool, extract: dict) -> Parsed:
        async with self.turn:
            if self.process is None:
                self.process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "core.seo.crawler", cwd=Path(__file__).parents[2], stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE)
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
    "python -m core.seo.crawler: parses the pages sent on stdin (see ParsingProcess), until stdin ends."
    while header := sys.stdin.buffer.readline():
        size, encoding, url, minhash, extract = json.loads(header)
        parsed = pickle.dumps(asdict(parse_page(sys.stdin.buffer.read(size), encoding, url, minhash, extract)))
        sys.stdout.buffer.write(len(parsed).to_bytes(8, "big") + parsed)
        sys.stdout.buffer.flush()


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


class Crawl:
    """One crawl, kept in its own SQLite file. Crawl(path, settings) starts one in a new file (the settings are
    kept in it); Crawl(path) opens the one there, to resume or read."""

    def __init__(self, path: Path, settings: Settings | None = None):
        self.path = Path(path)
        if settings is not None and not self.path.exists(): new_file(self.path, settings)
        if not self.path.exists(): raise FileNotFoundError(f"no crawl in {path}")
        self.db = connect(self.path)
        self.settings = Settings(**json.loads(self.db.execute("SELECT settings FROM crawl").fetchone()["settings"]))
        add_columns(self.db, extraction.columns(self.settings.extract))
        self.export_columns = EXPORT_COLUMNS + list(extraction.columns(self.settings.extract))
        self.site = self.settings.site
        self.robots: dict[str, Protego | None] = {}  # origin -> its rules (None: it has none)
        self.stop_asked = asyncio.Event()

    def close(self): self.db.close()

    # --- the crawl's record
    @property
    def status(self) -> str:
        "new, crawling, done (every page within the limits), stopped (by stop()) or limit (at max_pages)."
        return self.db.execute("SELECT status FROM crawl").fetchone()["status"]

    @property
    def note(self) -> str | None:
        "How the seeding went: the URLs the sitemaps gave, and the sitemaps that could not be read, with why."
        return self.db.execute("SELECT note FROM crawl").fetchone()["note"]

    def record(self, **columns):
        self.db.execute(f"UPDATE crawl SET {', '.join(f'{name} = ?' for name in columns)}", list(columns.values()))

    def progress(self, last: str = "") -> Progress:
        counts = dict(self.db.execute("SELECT state, count(*) FROM page GROUP BY state").fetchall())
        errors = self.db.execute(f"SELECT count(*) FROM page WHERE {BROKEN}").fetchone()[0]
        return Progress(counts.get("done", 0), sum(counts.get(state, 0) for state in PENDING), errors,
                        counts.get("blocked", 0), last)

    def refuse(self, url: str, why: str):
        "Notes what the crawler would not read at url (a robots.txt, a sitemap): a row of its own, state refused."
        self.db.execute("INSERT INTO page (url, state, refused) VALUES (?, 'refused', ?) "
                        "ON CONFLICT (url) DO UPDATE SET refused = excluded.refused", [url, why])

    def refusals(self, limit: int = 3) -> tuple[int, list[str]]:
        "How many URLs have a refusal, and the first `limit` of them as 'URL: why'."
        count = self.db.execute("SELECT count(*) FROM page WHERE refused IS NOT NULL").fetchone()[0]
        first = self.db.execute("SELECT url, refused FROM page WHERE refused IS NOT NULL ORDER BY state = 'refused' "
                                "DESC, id LIMIT ?", [limit]).fetchall()
        return count, [f"{row['url']}: {row['refused']}" for row in first]

    def refusals_said(self) -> str:
        "What the crawl would not read or follow, for the summary: how many, and the first few with why."
        count, first = self.refusals()
        if not count: return ""
        return f" Not read or not followed ({count:,}): {' · '.join(first)}{' …' if count > len(first) else ''}."

    def summary(self, final: Progress) -> str:
        "How an ended crawl went, in a sentence."
        return (f"Crawled {plural(final.done, 'page')} of {self.site.host} ({ENDINGS[self.status]}): "
                f"{plural(final.errors, 'error')}, {final.blocked:,} blocked by robots.txt, "
                f"{final.queued:,} left in the queue.{self.refusals_said()}")

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
        await asyncio.to_thread(validation.check, self.path, settings.near_duplicates)  # a thread: it reads every page
        if settings.check_external and ended != "stopped":
            await link_check.check(self.db, settings, self.stop_asked.is_set)
        self.record(status=ended, finished=datetime.now().isoformat(timespec="seconds"))
        return self.progress()

    async def first_done(self, tasks) -> set[asyncio.Task]:
        "Waits until one of the tasks is done, or stop() is called; returns the tasks done."
        stop = asyncio.ensure_future(self.stop_asked.wait())
        try: finished, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
        finally: stop.cancel()
        return finished - {stop}

    def seeding(self) -> asyncio.Task | None:
        """Seeds the frontier in the background (None: a crawl resumed after its seeding): the start URL at once,
        the sitemaps' URLs as they are read, so the first pages are crawled while a big sitemap is still arriving
        (92,000 URLs took 13 s). A crawl stopped before its seeding ends seeds again when it resumes."""
        if self.db.execute("SELECT seeded FROM crawl").fetchone()[0]: return None
        if self.settings.start: self.add_urls([self.settings.start], depth=0, state="queued")
        return asyncio.ensure_future(self.seed())

    async def crawl(self, on_progress, seeding: asyncio.Task | None) -> str:
        """Fetches the frontier, breadth first, with at most `concurrency` pages at work, while the seeding (if any)
        goes on; returns how it ended."""
        at_work: dict[asyncio.Task, int] = {}
        fetched, told, last = self.progress().done, 0.0, ""
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
                # Counting the pages costs a query: the progress is told at most every PROGRESS_EVERY seconds.
                if on_progress and time.monotonic() - told >= PROGRESS_EVERY:
                    await on_progress(self.progress(last))
                    told = time.monotonic()
        finally:
            pending = [*at_work, *filter(None, [seeding])]
            for task in pending: task.cancel()
            if pending: await asyncio.wait(pending)

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

    # --- one page
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

    async def visit(self, page_id: int, url: str, depth: int) -> str:
        "Fetches one queued page (unless robots.txt forbids it) and keeps what it found; returns 'url status'."
        target = httpx.URL(url)
        rules = await self.rules(target)
        if rules is not None and not rules.can_fetch(url, self.settings.user_agent):
            self.db.execute("UPDATE page SET state = 'blocked', not_indexable_why = 'blocked by robots.txt', "
                            "indexable = 0 WHERE id = ?", [page_id])
            return ""
        await self.wait_turn(target.host)
        found = await self.fetch(url)
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

    async def fetch(self, url: str) -> dict:
        """The answer to one GET within the timeout, its body (HTML only) read up to max_size bytes unpacked; a
        failure is in 'error', a redirect that will not be followed in 'refused'."""
        found = {"status": None, "error": None, "redirect_to": None, "content_type": None, "html": False,
                 "size": None, "truncated": False, "x_robots_tag": None, "body": b"", "encoding": "utf-8",
                 "refused": None}
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.timeout), self.client.stream("GET", url) as response:
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
                    found["body"], found["truncated"] = await read_body(response, self.settings.max_size)
                    found["size"] = found["size"] or len(found["body"])
        except TimeoutError:
            found["error"] = f"Timed out after {self.settings.timeout:g} s"
        except Refused as why:
            found["error"] = f"Not read: {why}"
        except httpx.HTTPError as error:
            found["error"] = why_failed(error)
        found["seconds"] = round(time.perf_counter() - started, 3)
        return found

    def keep(self, page_id: int, url: str, depth: int, found: dict, parsed: Parsed | None):
        "A fetched page's results, the URLs it leads to and its links, in one transaction."
        parsed = parsed or Parsed()
        internal, external = {}, set()
        for link, followed in parsed.links:
            if link == url: continue
            if in_site(httpx.URL(link), self.site): internal[link] = internal.get(link, False) or followed
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

    def redirects_to(self, page_id: int) -> int:
        "How many redirects in a row led to the page (each hop was found on the one before), counted up to the cap."
        return self.db.execute(
            "WITH RECURSIVE back(id, hops) AS (SELECT ?, 0 UNION ALL SELECT p.id, hops + 1 FROM back JOIN page c ON "
            "c.id = back.id JOIN page p ON p.id = c.found_on AND p.redirect_to = c.url WHERE hops < ?) "
            "SELECT max(hops) FROM back", [page_id, MAX_REDIRECTS]).fetchone()[0]

    def link(self, source: int, urls: list[str]):
        "Keeps the links from source to these known URLs; each new one raises its target's in-link count."
        for start in range(0, len(urls), 500):
            chunk = urls[start:start + 500]
            targets = [row[0] for row in self.db.execute(
                f"SELECT id FROM page WHERE url IN ({', '.join('?' * len(chunk))})", chunk)]
            new = [target for target in targets
                   if self.db.execute("INSERT OR IGNORE INTO link VALUES (?, ?)", [source, target]).rowcount]
            self.db.executemany("UPDATE page SET inlinks = inlinks + 1 WHERE id = ?", [(target,) for target in new])

    # --- reading the results
    def findings(self) -> list[tuple[Finding, int]]:
        "Every finding with the count of its pages (zeros included), in the order of FINDINGS, in one pass over them."
        counts = ", ".join(f"count(*) FILTER (WHERE {finding.where})" for finding in FINDINGS)
        return list(zip(FINDINGS, self.db.execute(f"SELECT {counts} FROM page").fetchone()))

    def chain(self, url: str) -> list[tuple[str, int | None]]:
        "The redirect chain from url: (url, status) per hop; it stops at a page that is no redirect, or at a loop."
        hops, seen = [], set()
        while url and url not in seen:
            seen.add(url)
            row = self.db.execute("SELECT status, redirect_to FROM page WHERE url = ?", [url]).fetchone()
            hops.append((url, row["status"] if row else None))
            url = row["redirect_to"] if row else None
        if url: hops.append((url, "loop"))
        return hops

    def linked_from(self, url: str, limit: int = 10) -> list[str]:
        "The pages that link to url (the first `limit`)."
        return [row[0] for row in self.db.execute(
            "SELECT s.url FROM page t JOIN link l ON l.target = t.id JOIN page s ON s.id = l.source "
            "WHERE t.url = ? ORDER BY s.depth, s.id LIMIT ?", [url, limit])]

    def counts(self, column: str, where: str = CRAWLED) -> list[tuple]:
        "(value, pages) for a column, for charts: status codes, depths."
        return self.db.execute(f"SELECT {column}, count(*) FROM page WHERE {where} GROUP BY 1 ORDER BY 1").fetchall()

    def broken_links(self):
        "(linking page, broken URL, its status or error) for every link to a broken page."
        return self.db.execute(
            "SELECT s.url, t.url, coalesce(t.error, t.status) FROM page t JOIN link l ON l.target = t.id "
            "JOIN page s ON s.id = l.source WHERE t.state = 'done' AND (t.status >= 400 OR t.error IS NOT NULL "
            "OR t.status IS NULL) "
            "ORDER BY t.url, s.url")

    def redirect_chains(self):
        "(URL, redirects, the chain as text, final URL, final status) for every redirecting page."
        for row in self.db.execute(f"SELECT url FROM page WHERE {REDIRECTS} ORDER BY url"):
            hops = self.chain(row["url"])
            yield (row["url"], len(hops) - 1, " → ".join(f"{status} {url}" for url, status in hops),
                   hops[-1][0], hops[-1][1])

    def export_rows(self, where: str = CRAWLED, args=(), order: str = "id"):
        return self.db.execute(f"SELECT {', '.join(self.export_columns)} FROM page WHERE {where} ORDER BY {order}",
                               args)

    def write_csv(self, path: Path, where: str = CRAWLED, args=(), order: str = "id") -> Path:
        "The pages (those matching where) as a CSV, every cell safe to open in a spreadsheet."
        return write_csv(path, self.export_columns, self.export_rows(where, args, order))

    def write_xlsx(self, path: Path) -> Path:
        "The crawl as an Excel workbook: its pages, its findings, its broken links and its redirect chains."
        return write_xlsx(path, {
            "Pages": (self.export_columns, self.export_rows()),
            "Findings": (["finding", "pages", "level", "why"],
                         [(finding.label, count, finding.level, finding.why) for finding, count in self.findings()]),
            "Broken links": (["linking page", "broken URL", "status or error"], self.broken_links()),
            "Redirect chains": (["URL", "redirects", "chain", "final URL", "final status"], self.redirect_chains()),
            "Broken external links": (["linking page", "external URL", "status or error"],
                                      link_check.broken(self.db)),
        })


if __name__ == "__main__":
    parse_stdin()
