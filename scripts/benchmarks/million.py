"""`scripts/bench --million [PAGES]`: the site crawl at scale, not in CI (a million pages take hours). The fork's Site
crawl app, through its routes, crawls a local site of PAGES pages (1,000,000 unless told; the fork's generated test
site, tests/local_site.py's BigSite), 8 requests at once, no delay; halfway its server is killed (kill -9), started
again, and the crawl resumed. It prints a Markdown table: pages per second, peak memory, the crawl file's size, the
pages lost and fetched twice by the kill, and the explorer's answer times on the whole crawl."""

import asyncio
import os
import re
import signal
import sqlite3
import statistics
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import httpx

from .measuring import load_average, millis, peak_rss, percentile, server, wait_for_200
from .site_crawl import explorer_views, tree_rss

NOTED_SITE = '''\
"""BigSite of PAGES pages; GET /requests.json says how many requests it answered, and for how many paths."""
import os
import sys

import uvicorn
from starlette.responses import JSONResponse

sys.path.insert(0, "tests")
from local_site import BigSite

site = BigSite(int(os.environ["PAGES"]))


async def app(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/requests.json":
        paths = [path for _, path in site.requests]
        return await JSONResponse({"requests": len(paths), "paths": len(set(paths))})(scope, receive, send)
    await site.app(scope, receive, send)

uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
'''


def done_pages(crawl_db: Path) -> int:
    with closing(sqlite3.connect(crawl_db, timeout=30)) as db:
        return db.execute("SELECT count(*) FROM page WHERE state = 'done'").fetchone()[0]


def crawl_status(crawl_db: Path) -> str:
    with closing(sqlite3.connect(crawl_db, timeout=30)) as db:
        return db.execute("SELECT status FROM crawl").fetchone()[0]


class PeakMemory:
    "Samples the resident memory of a process and its children every second, in a thread, until stopped."

    def __init__(self, pid: int):
        self.peak, self.stopped = 0, threading.Event()
        self.thread = threading.Thread(target=self.sample, args=(pid,), daemon=True)
        self.thread.start()

    def sample(self, pid: int):
        while not self.stopped.wait(1): self.peak = max(self.peak, tree_rss(pid))

    def stop(self) -> int:
        self.stopped.set()
        self.thread.join()
        return self.peak


async def crawl_until(crawl_db: Path, pages: int) -> None:
    "Waits until the crawl has fetched that many pages (or has ended short of them)."
    while True:
        await asyncio.sleep(2)
        if not crawl_db.exists(): continue
        if done_pages(crawl_db) >= pages or crawl_status(crawl_db) in ("done", "limit", "stopped"): return


async def million(pages: int, fork: Path, env: dict, scratch: Path) -> list[tuple[str, str]]:
    python, data = fork / ".venv/bin/python", scratch / "million-data"
    (scratch / "site").mkdir(parents=True)
    script = scratch / "site" / "noted_site.py"
    script.write_text(NOTED_SITE)
    env = env | {"DATA_DIR": str(data)}
    site_env = dict(os.environ) | {"PAGES": str(pages - 1)}
    with server([python, script], fork, site_env) as (site, site_url):
        wait_for_200(site_url + "/", site)
        with server([python, "server.py"], fork, env) as (app, app_url):
            wait_for_200(app_url + "/", app)
            async with httpx.AsyncClient(base_url=app_url, timeout=120) as client:
                key = re.search(r'id="run-([\w-]+)"', (await client.get("/site_crawl/new")).text)[1]
                (await client.post(f"/site_crawl/runs/{key}/steps/site", data={"start": site_url + "/"})
                 ).raise_for_status()
                crawl_db, memory = data / "crawls" / f"{key}.db", PeakMemory(app.pid)
                print(f"crawling {pages:,} pages, to be killed at {pages // 2:,} ...", file=sys.stderr)
                started, loads = time.monotonic(), [load_average()]
                (await client.post(f"/site_crawl/runs/{key}/steps/crawl", data={
                    "max_pages": pages, "max_depth": 100, "concurrency": 8, "delay": 0, "timeout": 30,
                    "max_size_mb": 5, "user_agent": "bench-crawler"})).raise_for_status()
                await crawl_until(crawl_db, pages // 2)
                server_peak = peak_rss(app.pid)
                os.killpg(app.pid, signal.SIGKILL)  # the server and its parsing process, as a power cut would
                app.wait()
                first_part, loads = time.monotonic() - started, loads + [load_average()]
        killed_at = done_pages(crawl_db)
        with server([python, "server.py"], fork, env) as (app, app_url):
            wait_for_200(app_url + "/", app)
            kept, memory_before = done_pages(crawl_db), memory.stop()
            memory = PeakMemory(app.pid)
            async with httpx.AsyncClient(base_url=app_url, timeout=120) as client:
                print(f"killed at {killed_at:,} pages; resuming ...", file=sys.stderr)
                resumed = time.monotonic()
                (await client.post(f"/site_crawl/runs/{key}/resume")).raise_for_status()
                await crawl_until(crawl_db, pages)
                crawling = first_part + time.monotonic() - resumed
                loads.append(load_average())
                while 'id="step-crawl" class="step done"' not in (await client.get("/site_crawl")).text:
                    await asyncio.sleep(2)  # the crawl's checks once it ends, then the run's step is done
                ended = time.monotonic() - resumed + first_part
                server_peak, sampled = max(server_peak, peak_rss(app.pid)), max(memory_before, memory.stop())
                done = done_pages(crawl_db)
                size = sum(path.stat().st_size for path in crawl_db.parent.glob(f"{key}.db*"))
                print("the explorer ...", file=sys.stderr)
                url, times = f"/site_crawl/runs/{key}/pages", []
                first = (await client.get(url)).text
                findings = re.findall(r'<option value="(\w+)"',
                                      first.split('name="finding"', 1)[1].split("</select>")[0])
                for view in explorer_views(findings):
                    asked = time.perf_counter()
                    (await client.get(url, params=view)).raise_for_status()
                    times.append(time.perf_counter() - asked)
        fetched = httpx.get(site_url + "/requests.json").json()
    mb = lambda size: f"{size / 2 ** 20:,.0f} MB"
    return [
        ("pages crawled", f"{done:,} of {pages:,}"),
        ("pages per second (the crawl's time, the restart left out)", f"{done / crawling:,.0f}/s ({crawling:,.0f} s)"),
        ("until the run's step is done (the checks once the crawl ends: near-duplicates, the findings kept, the "
         "explorer's indexes)", f"{ended - crawling:,.0f} s more"),
        ("server peak RSS (VmHWM)", mb(server_peak)),
        ("server and its parsing process, peak resident memory (sampled every second)", mb(sampled)),
        ("the crawl's file (with its WAL)", mb(size)),
        ("kill -9 at", f"{killed_at:,} pages; {kept:,} kept after the restart: {killed_at - kept:,} lost"),
        ("pages fetched more than once", f"{fetched['requests'] - fetched['paths']:,} ({fetched['requests']:,} "
                                          f"requests for {fetched['paths']:,} URLs, robots.txt included)"),
        (f"explorer, {len(times)} views once each", f"p50 {millis(statistics.median(times))}, p95 "
                                                    f"{millis(percentile(times, 95))}, slowest {millis(max(times))}"),
        ("load average (1 min) at the start, the kill, the end", ", ".join(f"{load:.1f}" for load in loads)),
    ]


def million_table(pages: int, fork: Path, env: dict, scratch: Path) -> str:
    rows = asyncio.run(million(pages, fork, env, scratch))
    return "\n".join(["| figure | value |", "|---|---|", *(f"| {figure} | {value} |" for figure, value in rows)])
