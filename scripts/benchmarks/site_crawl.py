"""The site crawl: the fork's Site crawl app against its generated test site, through the app's own routes."""

import asyncio
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import httpx
import websockets

from .measuring import (Row, Scratch, load_average, millis, pairs, peak_rss, percentile, ratio_row, resident, run,
                        server, wait_for_200, ws_url)
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


FILL = Path(__file__).with_name("crawl_fill.py")
SORTS = ["url", "status", "title", "depth", "inlinks", "outlinks", "words", "seconds"]
SHOWS = ["2xx", "3xx", "4xx", "5xx", "failed", "blocked", "pending", "beyond"]


def explorer_views(findings: list[str]) -> list[dict]:
    """Every view of the pages table the explorer offers, as query parameters: the crawl order, each column sorted
    both ways on the first page, the 40th and the last, searches (many matches, few, none; sorted), each status
    filter, each finding (on its own and sorted by title)."""
    views = [{}, {"desc": "1"}, {"page": "1000000"}]
    for sort in SORTS:
        for desc in ("0", "1"):
            views += [{"sort": sort, "desc": desc, "page": page} for page in ("1", "40", "1000000")]
    views += [{"q": "Page"}, {"q": "Page 12"}, {"q": "nothing like it"}, {"q": "Page 1", "sort": "title", "page": "20"},
              {"q": "/p/99", "sort": "inlinks", "desc": "1"}]
    views += [{"show": show} for show in SHOWS]
    views += [{"finding": finding} for finding in findings]
    views += [{"finding": finding, "sort": "title", "desc": "1", "page": "3"} for finding in findings]
    return views


async def explorer_rows(plan: Plan, fork: Path, env: dict) -> list[Row]:
    """The explorer at plan.explorer_rows pages: a crawl's file of that many pages of the generated test site, made
    through the crawl's own writer without fetching (crawl_fill.py), then every view of its pages table and a page's
    details asked through the app's routes, plan.runs times each; then its Excel workbook, downloaded once."""
    with server([fork / ".venv/bin/python", "server.py"], fork, env) as (app, app_url):
        wait_for_200(app_url + "/", app)
        async with httpx.AsyncClient(base_url=app_url, timeout=60) as client:
            key = re.search(r'id="run-([\w-]+)"', (await client.get("/site_crawl/new")).text)[1]
            (await client.post(f"/site_crawl/runs/{key}/steps/site", data={"start": "http://127.0.0.1:9/"})
             ).raise_for_status()
            print(f"a crawl's file of {plan.explorer_rows:,} pages ...", file=sys.stderr)
            run([fork / ".venv/bin/python", FILL, Path(env["DATA_DIR"]) / "crawls" / f"{key}.db", plan.explorer_rows,
                 "http://127.0.0.1:9"], cwd=fork)
            url = f"/site_crawl/runs/{key}/pages"
            first = (await client.get(url)).text
            findings = re.findall(r'<option value="(\w+)"', first.split('name="finding"', 1)[1].split("</select>")[0])
            asks = [(url, view) for view in explorer_views(findings)]
            asks += [(f"{url}/{page}", {}) for page in (1, plan.explorer_rows // 2, plan.explorer_rows)]
            print(f"{len(asks)} views of the explorer ...", file=sys.stderr)
            times, load = {}, load_average()
            for _ in range(plan.runs):
                for path, view in asks:
                    asked = time.perf_counter()
                    (await client.get(path, params=view)).raise_for_status()
                    times.setdefault((path, str(view)), []).append(time.perf_counter() - asked)
            excel = await excel_row(plan, client, f"/site_crawl/runs/{key}/crawl.xlsx", app.pid)
    every = [seconds for answers in times.values() for seconds in answers]
    slowest = max(times, key=lambda view: statistics.median(times[view]))
    return [Row(f"site crawl: the explorer at {plan.explorer_rows:,} pages, {len(asks)} views (each sort both ways on "
                "the first, 40th and last page; searches; each filter and finding; a page's details), each "
                f"{plan.runs} times", "—", "—",
                f"p50 {millis(statistics.median(every))}, p95 {millis(percentile(every, 95))}; slowest view "
                f"{slowest[1] or slowest[0]}: median {millis(statistics.median(times[slowest]))} (load {load:.1f})",
                "—", "p95 ≤ 100 ms", percentile(every, 95) <= 0.1), excel]


async def excel_row(plan: Plan, client: httpx.AsyncClient, url: str, pid: int) -> Row:
    """The crawl's Excel workbook, from asking to the whole file, and the server's memory meanwhile: its peak (VmHWM,
    set back to the present by clear_refs first) against what it held before. Flat: it grows by less than 32 MB, where
    100,000 rows held at once would take hundreds."""
    before = resident(pid)
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak resident set size starts again from now
    load, asked = load_average(), time.perf_counter()
    workbook = await client.get(url)
    workbook.raise_for_status()
    took, grew = time.perf_counter() - asked, peak_rss(pid) - before
    mb = lambda size: f"{size / 2 ** 20:,.0f} MB"
    return Row(f"site crawl: the Excel workbook of the crawl at {plan.explorer_rows:,} pages (every sheet), downloaded",
               "—", "—", f"{took:.2f} s, {len(workbook.content) / 2 ** 20:,.1f} MB; the server's memory "
               f"{mb(before)} before, {mb(grew)} more at its peak (load {load:.1f})", "—", "≤ 5 s, memory flat (< 32 MB more)",
               took <= 5 and grew < 32 * 2 ** 20)


SPIDER = Path(__file__).with_name("scrapy_spider.py")
SCRAPY_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "template-bench" / "scrapy-venv"


def scrapy() -> Path:
    "Scrapy's command, in a venv of the bench's own kept under ~/.cache (made the first time): no fork needs it."
    command = SCRAPY_VENV / "bin" / "scrapy"
    if not command.exists():
        print(f"installing Scrapy into {SCRAPY_VENV} ...", file=sys.stderr)
        run([sys.executable, "-m", "venv", SCRAPY_VENV])
        run([SCRAPY_VENV / "bin" / "pip", "install", "--quiet", "scrapy"])
    return command


def tree_rss(pid: int) -> int:
    "The resident memory of a process and its descendants, in bytes (0 once it is gone)."
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try: parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError): pass  # gone meanwhile
    family, total = {pid}, 0
    for child, parent in sorted(parents.items()):  # a child's id is mostly above its parent's
        if parent in family: family.add(child)
    for member in family:
        try: total += resident(member)
        except (OSError, TypeError): pass
    return total


def timed_crawl(command, cwd: Path, env: dict) -> tuple[float, int]:
    "Runs a crawler to its end: its wall time and the peak resident memory of it and its children (sampled)."
    started, peak = time.monotonic(), 0
    process = subprocess.Popen([str(part) for part in command], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    while process.poll() is None:
        peak = max(peak, tree_rss(process.pid))
        time.sleep(0.2)
    took, said = time.monotonic() - started, process.stderr.read()
    if process.returncode: raise RuntimeError(f"{command[0]} failed: {said[-2000:]}")
    return took, peak


def scrapy_rows(plan: Plan, fork: Path, env: dict, fresh: Scratch) -> list[Row]:
    """The fork's crawl (`./run crawl`, as cron runs it: the same crawler as the app, its audit included) and a minimal
    Scrapy spider (scrapy_spider.py), one after the other on the same local site of plan.crawl_pages pages, 8 requests
    at once, no delay: pages per second and the peak memory of each, in plan.scrapy_pairs pairs."""
    spider, python = scrapy(), fork / ".venv/bin/python"
    # Their modules compiled once before either is timed (pip compiled Scrapy's as it installed it).
    run([python, "-c", "import core.seo.crawl_cli, core.seo.parsing, datasketch"], cwd=fork, env=env)
    script = fresh("scrapy-site") / "big_site.py"
    script.parent.mkdir()
    script.write_text(BIG_SITE)
    results = {"fork": [], "scrapy": []}
    with server([python, script], fork, dict(os.environ) | {"PAGES": str(plan.crawl_pages - 1)}) as (site, site_url):
        wait_for_200(site_url + "/", site)

        def ours():
            data = fresh("crawl-cli-data")
            took, peak = timed_crawl([python, "-m", "core.seo.crawl_cli", site_url + "/", "--max-pages",
                                      plan.crawl_pages, "--max-depth", 100, "--concurrency", 8, "--delay", 0,
                                      "--timeout", 30, "--no-external-links"], fork, env | {"DATA_DIR": str(data)})
            with closing(sqlite3.connect(next((data / "crawls").glob("*.db")))) as db:
                done = db.execute("SELECT count(*) FROM page WHERE state = 'done'").fetchone()[0]
            results["fork"].append((done / took, peak, done, load_average()))
            return done / took

        def theirs():
            feed = fresh("scrapy-feed") / "pages.jsonl"
            feed.parent.mkdir()
            took, peak = timed_crawl([spider, "runspider", SPIDER, "-a", f"start={site_url}/", "-o", feed], fork,
                                     dict(os.environ))
            done = len(feed.read_text().splitlines())
            results["scrapy"].append((done / took, peak, done, load_average()))
            return done / took

        print(f"the crawl and Scrapy, {plan.scrapy_pairs} pairs of {plan.crawl_pages:,} pages ...", file=sys.stderr)
        scrapy_speed, our_speed = pairs(theirs, ours, plan.scrapy_pairs, 0)
    mb = lambda size: f"{size / 2 ** 20:.0f} MB"
    memory = {side: statistics.median(peak for _, peak, _, _ in runs) for side, runs in results.items()}
    pages = {side: min(done for _, _, done, _ in runs) for side, runs in results.items()}
    loads = [load for runs in results.values() for *_, load in runs]
    return [
        ratio_row(f"site crawl against a minimal Scrapy spider, {plan.crawl_pages:,}-page local site, 8 at once, no "
                  f"delay: pages per second (whole process, start to end; load {min(loads):.1f} to {max(loads):.1f})",
                  f"Scrapy (scrapy_spider.py): {pages['scrapy']:,} pages", scrapy_speed, our_speed,
                  lambda speed: f"{speed:,.0f}/s", "≥ 1x", 1.0, higher_is_better=True),
        Row("site crawl against a minimal Scrapy spider: peak memory, the process and its children (sampled)",
            "Scrapy", mb(memory["scrapy"]), f"{mb(memory['fork'])} ({pages['fork']:,} pages)",
            f"{memory['fork'] / memory['scrapy']:.2f}x", "—", None),
    ]
