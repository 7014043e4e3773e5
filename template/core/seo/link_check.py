"""External links checked: every link a crawl found to another site, asked once, after the crawl.

crawler.py keeps each page's external links in the crawl's file (the `external` and `external_link` tables); when
the crawl's settings ask for it (check_external), check() asks each URL once: HEAD first, GET when HEAD is refused
or fails (many servers answer HEAD with 405 or 404), redirects followed one hop at a time up to
url_checker.MAX_REDIRECTS. At most `concurrency` requests are out at once and each host's requests take turns,
`delay` apart, as the crawl's own do. Only the status line is read, never a body (httpx's own following reads each
redirect's whole body, a gzip bomb included), and each method's chain is held to the crawl's timeout in all.
"""

import asyncio

import httpx

from core.seo.fetching import Refused, Turns, set_location_aside, why_failed
from core.seo.findings import Finding
from core.seo.url_checker import MAX_REDIRECTS, redirect_target

SCHEMA = """
CREATE TABLE IF NOT EXISTS external (id INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE, status INTEGER, error TEXT,
    checked TEXT);
CREATE TABLE IF NOT EXISTS external_link (source INTEGER NOT NULL, target INTEGER NOT NULL,
    PRIMARY KEY (source, target)) WITHOUT ROWID;
"""
BROKEN = "(e.status >= 400 OR e.error IS NOT NULL)"
FINDINGS = [
    Finding("external_broken", "Links to broken external pages",
            f"id IN (SELECT l.source FROM external_link l JOIN external e ON e.id = l.target WHERE {BROKEN})",
            "error", "The other site's page answers 4xx or 5xx, or nothing: fix or drop the link."),
]


def keep(db, source: int, urls: set[str]):
    "Keeps a page's external links (inside the caller's transaction)."
    if not urls: return
    db.executemany("INSERT OR IGNORE INTO external (url) VALUES (?)", [(url,) for url in urls])
    db.executemany("INSERT OR IGNORE INTO external_link SELECT ?, id FROM external WHERE url = ?",
                   [(source, url) for url in urls])


def broken(db):
    "(linking page, broken external URL, its status or error) for every link to a broken external page."
    return db.execute("SELECT p.url, e.url, coalesce(e.status, e.error) FROM external e JOIN external_link l ON "
                      f"l.target = e.id JOIN page p ON p.id = l.source WHERE {BROKEN} ORDER BY e.url, p.url")


async def check(db, settings, stopping=lambda: False):
    "Asks every external URL not checked yet, within the crawl's concurrency and per-host delay, until stopping()."
    todo = db.execute("SELECT id, url FROM external WHERE checked IS NULL ORDER BY id").fetchall()
    if not todo: return
    turns, room = Turns(), asyncio.Semaphore(settings.concurrency)

    async def one(client, row):
        async with room:
            if stopping(): return
            host = httpx.URL(row["url"]).host
            status, error = await answer(client, row["url"], lambda: turns.wait(host, settings.delay), settings.timeout)
        db.execute("UPDATE external SET status = ?, error = ?, checked = datetime('now') WHERE id = ?",
                   [status, error, row["id"]])

    async with httpx.AsyncClient(headers={"User-Agent": settings.user_agent}, timeout=settings.timeout,
                                 follow_redirects=False, event_hooks={"response": [set_location_aside]}) as client:
        await asyncio.gather(*(one(client, row) for row in todo))


async def answer(client: httpx.AsyncClient, url: str, turn, seconds: float) -> tuple[int | None, str | None]:
    "(status, error) of a URL: HEAD, then GET if HEAD did not answer below 400, each within `seconds` in all."
    status = error = None
    for method in ("HEAD", "GET"):
        await turn()
        try:
            async with asyncio.timeout(seconds): status, error = await final_status(client, method, url), None
        except TimeoutError:
            status, error = None, f"Timed out after {seconds:g} s"
        except (httpx.HTTPError, Refused) as why:
            status, error = None, why_failed(why)
        if status is not None and status < 400: break
    return status, error


async def final_status(client: httpx.AsyncClient, method: str, url: str) -> int:
    "The status the URL's redirect chain ends on, its hops asked one at a time, no body read; Refused past the cap."
    for _ in range(MAX_REDIRECTS + 1):
        async with client.stream(method, url) as response:
            target = redirect_target(response)
        if target is None: return response.status_code
        url = target
    raise Refused(f"More than {MAX_REDIRECTS} redirects")
