"""`python crawl_fill.py FILE PAGES ORIGIN`, run in a fork (its root the working directory, its venv's python): a crawl's
file of PAGES pages as the crawl would write it after crawling the fork's generated test site (tests/local_site.py,
BigSite) at ORIGIN, without fetching a page. Crawling 100,000 pages takes ten minutes; this, about one.

Every page goes through the crawl's own writer (Crawl.keep: its row, the URLs it leads to, its links, the in-link
counts), breadth first from the frontier as the crawl takes it, then through the checks a crawl runs once it ends
(validation.check, crawl_file.keep_findings). What a page says is BigSite's: one page is parsed, and each page's title, description, h1,
links and lengths are its own (they are all a page of BigSite has of its own; its text is the same on every page).
"""

import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path[:0] = [".", "tests"]  # the fork's modules, and its test site

from core.seo import crawl_file, validation  # noqa: E402
from core.seo.crawler import Crawl, Settings  # noqa: E402
from core.seo.parsing import parse_page  # noqa: E402
from local_site import BigSite  # noqa: E402


def page_of(origin: str, site: BigSite, model, n: int):
    "What BigSite's page n says, as the parser would give it (model: a page of it, parsed)."
    title, description = f"Page {n}", f"Page {n} of the big site"
    links = [f"{origin}/", *(f"{origin}/p/{section}" for section in range(1, 11)),
             *(f"{origin}/p/{child}" for child in range(10 * n + 1, min(10 * n + 11, site.pages))),
             f"{origin}/p/{n // 10}"]
    return replace(model, title=title, description=description, h1=[title], links=[(link, True) for link in links],
                   columns=model.columns | {"title_chars": len(title), "description_chars": len(description)})


def fill(path: Path, pages: int, origin: str):
    site = BigSite(pages - 1)  # as the bench serves it: the home page and pages - 1 others
    model = parse_page(site.draw(1).body, "utf-8", f"{origin}/p/1")
    crawl = Crawl(path, Settings(start=f"{origin}/", max_pages=pages, max_depth=100, concurrency=8, delay=0,
                                 robots_sitemaps=False, check_external=False))
    crawl.add_urls([f"{origin}/"], depth=0, state="queued")
    crawl.record(seeded=1, status="crawling")
    fetched = 0
    while fetched < pages and (rows := crawl.next_pages(min(500, pages - fetched), [])):
        for row in rows:
            n = 0 if row["url"] == f"{origin}/" else int(row["url"].rsplit("/", 1)[1])
            found = {"status": 200, "error": None, "redirect_to": None, "content_type": "text/html", "html": True,
                     "size": 7200, "truncated": False, "x_robots_tag": None, "refused": None, "seconds": 0.004}
            crawl.keep(row["id"], row["url"], row["depth"], found, page_of(origin, site, model, n))
        fetched += len(rows)
    validation.check(path, crawl.settings.near_duplicates)
    crawl_file.keep_findings(path)
    crawl.record(status="done" if fetched >= pages else "limit", finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
    crawl.close()


if __name__ == "__main__":
    started = time.monotonic()
    fill(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
    print(f"{sys.argv[2]} pages in {time.monotonic() - started:.0f} s", file=sys.stderr)
