"""The site crawl: the fork's Site crawl app against its generated test site, through the app's own routes."""

import asyncio
import os
import re
import sqlite3
import statistics
import sys
import time
from contextlib import closing
from pathlib import Path

import httpx
import websockets

from .measuring import Row, Scratch, millis, peak_rss, percentile, server, wait_for_200, ws_url
from .plan import Plan

BIG_SITE = '''\
"""The fork's generated test site (tests/local_site.py, BigSite) of PAGES pages, for the crawl figures."""
import os
import sys

import uvicorn

sys.path.insert(0, "tests")
from local_site import BigSite

uvicorn.run(BigSite(int(os.environ["PAGES"])).app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
'''
CRAWLED = re.compile(r"([\d,]+) pages crawled")


async def crawl_rows(plan: Plan, fork: Path, env: dict, fresh: Scratch) -> list[Row]:
    """One crawl of a plan.crawl_pages-page local site with no delay, 8 requests at once: pages per second, the time
    until the first crawled page is on screen (the progress line, pushed over the WebSocket), the server's peak RSS
    at 1,000 pages and at the end, then the answer time of the pages table at that many rows."""
    script = fresh("site") / "big_site.py"
    script.parent.mkdir()
    script.write_text(BIG_SITE)
    python = fork / ".venv/bin/python"
    with server([python, script], fork, dict(os.environ) | {"PAGES": str(plan.crawl_pages - 1)}) as (site, site_url), \
         server([python, "server.py"], fork, env) as (app, app_url):
        wait_for_200(site_url + "/", site)
        wait_for_200(app_url + "/", app)
        async with httpx.AsyncClient(base_url=app_url, timeout=60) as client:
            key = re.search(r'id="run-([\w-]+)"', (await client.get("/site_crawl/new")).text)[1]
            (await client.post(f"/site_crawl/runs/{key}/steps/site", data={"start": site_url + "/"})).raise_for_status()
            idle = peak_rss(app.pid)
            print(f"site crawl of {plan.crawl_pages:,} pages ...", file=sys.stderr)
            async with websockets.connect(ws_url(app_url), max_size=None) as tab:  # a tab watching, until it sees one
                started = time.monotonic()
                (await client.post(f"/site_crawl/runs/{key}/steps/crawl", data={
                    "max_pages": plan.crawl_pages, "max_depth": 100, "concurrency": 8, "delay": 0, "timeout": 30,
                    "max_size_mb": 5, "user_agent": "bench-crawler"})).raise_for_status()
                while not any(int(n.replace(",", "")) >= 1 for n in CRAWLED.findall(await tab.recv())): pass
                first_result = time.monotonic() - started
            crawl_db, at_1000 = Path(env["DATA_DIR"]) / "crawls" / f"{key}.db", None
            while 'id="step-crawl" class="step done"' not in (await client.get("/site_crawl")).text:
                if at_1000 is None and crawled_pages(crawl_db) >= 1000: at_1000 = peak_rss(app.pid)
                await asyncio.sleep(0.25)
            took, done = time.monotonic() - started, crawled_pages(crawl_db)
            at_end = peak_rss(app.pid)
            print("pages table answer time ...", file=sys.stderr)
            views = [{}, {"sort": "title", "desc": "1"}, {"q": "Page 12"}, {"finding": "duplicate_title"},
                     {"sort": "inlinks", "desc": "1", "page": "40"}]
            answers = []
            for _ in range(plan.runs * 3):
                for view in views:
                    asked = time.perf_counter()
                    (await client.get(f"/site_crawl/runs/{key}/pages", params=view)).raise_for_status()
                    answers.append(time.perf_counter() - asked)
    mb = lambda size: f"{size / 2 ** 20:.0f} MB"
    grew = at_end / at_1000 if at_1000 else None
    return [
        Row(f"site crawl of a {plan.crawl_pages:,}-page local site: pages per second (8 at once, no delay)", "—", "—",
            f"{done / took:,.0f}/s ({done:,} pages in {took:.0f} s)", "—", "all pages crawled",
            done == plan.crawl_pages),
        Row("site crawl: time to the first crawled page on screen (its progress line over the WebSocket)", "—", "—",
            f"{first_result:.2f} s", "—", "≤ 2 s", first_result <= 2),
        Row("site crawl: server peak RSS at 1,000 pages and at the end", "—", "—",
            f"{mb(at_1000) if at_1000 else '—'} at 1,000, {mb(at_end)} at {done:,} ({mb(idle)} before)", "—",
            "bounded: ≤ 1.25x from 1,000 pages to the end", None if grew is None else grew <= 1.25),
        Row(f"site crawl: pages table answer time at {done:,} rows (sorted, searched, filtered, paged)", "—", "—",
            f"p50 {millis(statistics.median(answers))}, p95 {millis(percentile(answers, 95))}", "—", "p95 ≤ 100 ms",
            percentile(answers, 95) <= 0.1),
    ]


def crawled_pages(crawl_db: Path) -> int:
    "Pages the crawl has fetched so far, read from its own SQLite file."
    if not crawl_db.exists(): return 0
    with closing(sqlite3.connect(crawl_db, timeout=5)) as db:
        try: return db.execute("SELECT count(*) FROM page WHERE state = 'done'").fetchone()[0]
        except sqlite3.OperationalError: return 0  # the file is there, its tables not yet
