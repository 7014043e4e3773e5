"""A crawl's SQLite file: its settings, its record (status, progress, what it would not read), its pages and links,
and what is read from them (findings, redirect chains, broken links, CSV and Excel). The crawl (crawler.Crawl)
writes it page by page; the app, the notebooks and `./run crawl` read it, while it is written too (WAL)."""

import json
import sqlite3
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from core import config
from core.exports import write_csv, write_xlsx
from core.seo import extraction, link_check, onpage, rendering, sitemaps, validation
from core.seo.findings import BROKEN, CORE, CRAWLED, REDIRECTS, Finding
from core.seo.url_checker import MAX_REDIRECTS, normal_url


CRAWLS_DIR = config.DATA_DIR / "crawls"
USER_AGENT = f"Mozilla/5.0 (compatible; {config.SLUG}-crawler/1.0)"
SITEMAP_LIMIT = 50 * 1024 * 1024  # bytes of one sitemap, unpacked: the sitemaps.org limit
SITEMAP_FILES = 200  # sitemaps read from one index (and its nested indexes) at most
SITEMAP_URLS = 100_000  # URLs taken from the sitemaps at most
FEW = 10_000  # pages of a finding that are read and sorted, not looked up one by one in the order of a sort
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
    started TEXT, finished TEXT, seeded INTEGER NOT NULL DEFAULT 0, note TEXT, findings TEXT);
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
CREATE TABLE IF NOT EXISTS finding (id TEXT NOT NULL, page INTEGER NOT NULL, PRIMARY KEY (id, page)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS page_frontier ON page (state, depth, id);
"""
# Made once the crawl ends (keep_findings): while it works they would only slow its writes. A sort's index holds the
# id (the tie-break, so a page far down is found in the index alone) and the state (whether a page is crawled); the
# title's also holds the URL, so a search of the URLs and titles reads that index, not the pages.
EXPLORER_INDEXES = """
DROP INDEX IF EXISTS page_status; DROP INDEX IF EXISTS page_title; DROP INDEX IF EXISTS page_depth;
DROP INDEX IF EXISTS page_inlinks; DROP INDEX IF EXISTS page_seconds; DROP INDEX IF EXISTS page_words;
CREATE INDEX IF NOT EXISTS page_description ON page (description);
CREATE INDEX IF NOT EXISTS page_title_sort ON page (title, id, state, url);
CREATE INDEX IF NOT EXISTS page_url_sort ON page (url, id, state);
""" + "".join(f"CREATE INDEX IF NOT EXISTS page_{column}_sort ON page ({column}, id, state);\n"
              for column in ("status", "depth", "inlinks", "outlinks", "words", "seconds"))
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
    add_columns(db, {"findings": "TEXT"}, "crawl")
    return db


def add_columns(db: sqlite3.Connection, columns: dict[str, str], table: str = "page"):
    "Adds the columns a crawl's file made by an older version lacks (of its page table, or another)."
    have = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
    for name, kind in columns.items():
        if name not in have: db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def keep_findings(path: Path):
    """Once a crawl ends, on a connection of its own (run in a thread): each finding's pages into the finding table
    and their counts into the crawl's record, the explorer's indexes, and the query planner's statistics (ANALYZE).
    Testing every page for a finding, counting them, sorting them all took a scan of the page table, 100 to 300 ms at
    100,000 pages; the explorer reads a finding's pages here instead, and sorts through the indexes."""
    with closing(connect(path)) as db:
        db.executescript(EXPLORER_INDEXES)
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM finding")
            counts = {finding.id: db.execute(f"INSERT INTO finding SELECT ?, id FROM page WHERE ({CRAWLED}) AND "
                                             f"({finding.where})", [finding.id]).rowcount for finding in FINDINGS}
            db.execute("UPDATE crawl SET findings = ?", [json.dumps(counts)])
        db.execute("ANALYZE")


def new_file(path: Path, settings: Settings):
    """Makes a new crawl's file under another name, then renames it into place: the app's pages open a crawl's file
    as soon as it is there, and two connections setting up one new file at once fail ("database is locked")."""
    part = path.with_name(f".{path.name}.part")
    with closing(connect(part)) as db:
        db.execute("INSERT OR REPLACE INTO crawl (id, settings, status) VALUES (1, ?, 'new')",
                   [json.dumps(asdict(settings))])
    part.replace(path)


class CrawlFile:
    """One crawl's file. CrawlFile(path, settings) makes a new one (the settings are kept in it); CrawlFile(path)
    opens the one there."""

    def __init__(self, path: Path, settings: Settings | None = None):
        self.path = Path(path)
        if settings is not None and not self.path.exists(): new_file(self.path, settings)
        if not self.path.exists(): raise FileNotFoundError(f"no crawl in {path}")
        self.db = connect(self.path)
        self.settings = Settings(**json.loads(self.db.execute("SELECT settings FROM crawl").fetchone()["settings"]))
        add_columns(self.db, extraction.columns(self.settings.extract))
        self.export_columns = EXPORT_COLUMNS + list(extraction.columns(self.settings.extract))
        self.site = self.settings.site

    # --- the crawl's record

    def close(self): self.db.close()

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

    # --- reading the results
    def kept_findings(self) -> dict[str, int] | None:
        "Each finding's count, once the crawl ended and kept its findings (keep_findings); else None."
        kept = self.db.execute("SELECT findings FROM crawl").fetchone()[0]
        counts = json.loads(kept) if kept else {}
        return counts if counts.keys() >= FINDING.keys() else None  # a finding newer than the file: not kept

    def forget_findings(self):
        "A crawl at work again: its kept findings no longer hold."
        self.db.execute("DELETE FROM finding")
        self.record(findings=None)

    def findings(self) -> list[tuple[Finding, int]]:
        """Every finding with the count of its crawled pages (zeros included), in the order of FINDINGS: as kept once
        the crawl ended, else counted in one pass over the pages."""
        if kept := self.kept_findings(): return [(finding, kept[finding.id]) for finding in FINDINGS]
        counts = ", ".join(f"count(*) FILTER (WHERE {finding.where})" for finding in FINDINGS)
        return list(zip(FINDINGS, self.db.execute(f"SELECT {counts} FROM page WHERE {CRAWLED}").fetchone()))

    def found(self, finding: str) -> tuple[str, list]:
        """The SQL condition (and its arguments) of the pages with a finding. Once the crawl ended, its kept pages:
        read first when they are few (then sorted), looked up for each page in the sort's order when they are many."""
        kept = self.kept_findings()
        if not kept: return FINDING[finding].where, []
        if kept[finding] <= FEW: return "id IN (SELECT page FROM finding WHERE id = ?)", [finding]
        return "EXISTS (SELECT 1 FROM finding f WHERE f.id = ? AND f.page = page.id)", [finding]

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

    def redirects_to(self, page_id: int) -> int:
        "How many redirects in a row led to the page (each hop was found on the one before), counted up to the cap."
        return self.db.execute(
            "WITH RECURSIVE back(id, hops) AS (SELECT ?, 0 UNION ALL SELECT p.id, hops + 1 FROM back JOIN page c ON "
            "c.id = back.id JOIN page p ON p.id = c.found_on AND p.redirect_to = c.url WHERE hops < ?) "
            "SELECT max(hops) FROM back", [page_id, MAX_REDIRECTS]).fetchone()[0]

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
