"""`./run crawl URL [options]`: a site crawl without the browser, for cron or a systemd timer.

It crawls as the Site crawl app does (crawler.py, the same settings), into data/crawls/, and saves the crawl as a
finished run of the app in the app's database, for a profile (the first one unless --profile names another): the
app lists it with the runs made in the browser, with its findings, table and downloads. Progress goes to stderr,
the summary and the findings found to stdout. The exit status is 0 for a crawl that ended, 1 for one that failed
(it raised, or no page answered at all), 2 for arguments refused.
"""

import argparse
import asyncio
import json
import secrets
import sys
import time
from datetime import datetime

from core import config
from core.seo import extraction
from core.seo import rendering
from core.seo.crawler import CRAWLS_DIR, USER_AGENT, Crawl, Settings
from core.database import open_database
from core.seo.url_checker import normal_url
from core.workflows import TABLES

APP = "site_crawl"  # the plugin the runs belong to
PROFILE = dict(id=int, name=str, pk="id")  # server.py's profile table, made here if the app never ran


def arguments(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./run crawl", description="Crawl a site and audit it, into the app's "
                                     "database (the Site crawl app shows it).")
    parser.add_argument("url", nargs="?", default="", help="the URL to start from")
    parser.add_argument("--sitemap", action="append", default=[], help="a sitemap URL (again for more)")
    parser.add_argument("--no-robots-sitemaps", action="store_true", help="not the sitemaps robots.txt lists")
    parser.add_argument("--max-pages", type=int, default=500)
    parser.add_argument("--max-depth", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--delay", type=float, default=0.25, help="seconds between two requests to a host")
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--max-size-mb", type=float, default=5)
    parser.add_argument("--near-duplicates", type=float, default=0.9, help="similarity from 0 to 1; 0: off")
    parser.add_argument("--no-external-links", action="store_true", help="do not check the external links")
    parser.add_argument("--user-agent", default=USER_AGENT)
    parser.add_argument("--render-js", action="store_true", help="read pages as Chromium renders them (slower)")
    parser.add_argument("--extract", action="append", default=[], metavar="'NAME: SELECTOR'",
                        help="a field to extract, by CSS selector (::attr(name): an attribute); again for more")
    parser.add_argument("--profile", help="the app's profile to save the run under (default: the first)")
    args = parser.parse_args(argv)
    if not (args.url or args.sitemap): parser.error("give a URL, a --sitemap, or both")
    try:
        args.url = normal_url(args.url) if args.url else ""
        args.sitemap = [normal_url(url) for url in args.sitemap]
    except ValueError as why:
        parser.error(f"not a URL: {why}")
    try: args.extract = extraction.parse_fields("\n".join(args.extract))
    except ValueError as why: parser.error(str(why))
    if args.render_js and (why := rendering.unavailable()): parser.error(why)
    return args


def chosen(args) -> dict:
    "The run's crawl settings, as the app's form keeps them."
    return {"max_pages": args.max_pages, "max_depth": args.max_depth, "concurrency": args.concurrency,
            "delay": args.delay, "timeout": args.timeout, "max_size_mb": args.max_size_mb,
            "near_duplicates": args.near_duplicates, "check_external": not args.no_external_links,
            "user_agent": args.user_agent, "extract": args.extract, "render_js": args.render_js}


def profile_id(db, name: str | None) -> int:
    "The profile's id: the one named, else the first; a first one (Default) when there is none."
    with db.transaction():
        for table, schema in {"profile": PROFILE, **TABLES}.items(): db.t[table].create(**schema, if_not_exists=True)
        if name is None and db.execute("SELECT count(*) FROM profile").fetchone()[0] == 0:
            db.execute("INSERT INTO profile (name) VALUES ('Default')")
        row = db.execute("SELECT id FROM profile ORDER BY id LIMIT 1").fetchone() if name is None else \
            db.execute("SELECT id FROM profile WHERE name = ?", [name]).fetchone()
    if row is None: raise SystemExit(f"No profile named {name!r} in {config.DB_PATH}.")
    return row[0]


def save_run(db, key: str, profile: int, site: dict, crawl: dict):
    "The crawl as a finished run of the Site crawl app."
    now = datetime.now().isoformat()
    with db.transaction():
        db.t.pipeline.insert(key=key, app=APP, profile_id=profile, step="", created=now, used=now, job=None,
                             state=json.dumps({"site": site, "crawl": crawl}))


async def crawl_with_progress(crawl: Crawl):
    told = 0.0

    async def show(progress):
        nonlocal told
        if time.monotonic() - told >= 1:
            print(progress, file=sys.stderr, flush=True)
            told = time.monotonic()
    return await crawl.run(show)


def main(argv=None) -> int:
    args = arguments(argv)
    settings, db = chosen(args), open_database(config.DB_PATH)
    profile = profile_id(db, args.profile)
    key = f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    site = {"start": args.url, "sitemaps": args.sitemap, "robots_sitemaps": not args.no_robots_sitemaps}
    path = CRAWLS_DIR / f"{key}.db"
    crawl = Crawl(path, Settings.of_run(site, settings))
    try:
        final = asyncio.run(crawl_with_progress(crawl))
        answered = crawl.db.execute("SELECT count(*) FROM page WHERE status IS NOT NULL").fetchone()[0]
        summary, status = crawl.summary(final), crawl.status
        findings = [(finding, count) for finding, count in crawl.findings() if count]
    except Exception as problem:  # noqa: BLE001 -- any failure is the crawl's, said in one line
        print(f"The crawl failed: {type(problem).__name__}: {problem}", file=sys.stderr)
        return 1
    finally:
        crawl.close()
    save_run(db, key, profile, site, settings | {"summary": summary, "status": status})
    print(summary)
    for finding, count in findings: print(f"  {finding.level:7}  {count:>6,}  {finding.label}")
    print(f"Saved as run {key} of the Site crawl app (data/crawls/{key}.db).")
    if not answered: print("No page answered: the crawl failed.", file=sys.stderr)
    return 0 if answered else 1


if __name__ == "__main__":
    sys.exit(main())
