"""crawler.py against the local test site and its traps (tests/local_site.py): what a crawl finds and records for each
page, robots.txt for the user agent chosen, sitemaps alone, the limits and the politeness, stop and resume from the
frontier in the file, the CSV and the workbook (safe to open in a spreadsheet), and the starter notebook."""

import asyncio
import csv
import sqlite3
import threading
import time

import openpyxl
import pytest

from core.seo import rendering
from conftest import CHROMIUM, ROOT, needs_chromium, run_notebook, served, shipped
from core.seo.crawler import Crawl, Settings
from core.seo.extraction import parse_fields
from core.seo.findings import CORE, CRAWLED
from core.seo.parsing import parse_page
from local_site import FORMULA, HOME_LINKS, HUGE, ORPHAN, LocalSite

NOTEBOOK = ROOT / "notebooks" / "site_crawl.ipynb"


@pytest.fixture(scope="module")
def site():
    with served(LocalSite()) as site:
        yield site


def crawl(tmp_path, site, name="crawl", **settings) -> Crawl:
    "A finished crawl of the local site: start at /, no delay, a 1 MB page cap and a 5 s timeout unless told."
    options = {"start": f"{site.url}/", "delay": 0, "max_size": 1024 * 1024, "timeout": 5} | settings
    done = Crawl(tmp_path / f"{name}.db", Settings(**options))
    asyncio.run(done.run())
    return done


@pytest.fixture(scope="module")
def audited(site, tmp_path_factory):
    "The whole local site, crawled once for the tests that read it; its pages by path."
    done = crawl(tmp_path_factory.mktemp("audit"), site, max_depth=4)
    pages = {row["url"].removeprefix(site.url): dict(row) for row in done.db.execute("SELECT * FROM page")}
    yield done, pages
    done.close()


def test_each_page_has_its_seo_facts(audited, site):
    done, pages = audited
    home, about = pages["/"], pages["/about"]
    assert (home["status"], home["depth"], home["title"], home["description"], home["h1_count"], home["h1"]) == (
        200, 0, "Home", "Home", 1, "Home")
    assert home["outlinks"] == 19 and home["external_links"] == 2  # mailto: and #top are no links
    assert home["words"] == 1 + 11 + len(HOME_LINKS) and home["indexable"] == 1 and home["in_sitemap"] == 1
    assert (about["depth"], about["inlinks"], about["found_on"]) == (1, 1, home["id"])  # a redirect to it is no link
    assert pages["/hreflang"]["hreflang"].splitlines() == [f"en {site.url}/hreflang", f"fr {site.url}/fr/hreflang"]
    assert 0 < home["seconds"] < 1 and home["content_type"] == "text/html" and done.status == "done"


def test_redirects_are_hops_with_their_codes_and_chains_and_loops_are_found(audited, site):
    done, pages = audited
    assert [(url.removeprefix(site.url), status) for url, status in done.chain(f"{site.url}/moved")] == [
        ("/moved", 301), ("/moved-again", 302), ("/moved-last", 307), ("/moved-final", 308), ("/about", 200)]
    assert [(url.removeprefix(site.url), status) for url, status in done.chain(f"{site.url}/loop-a")] == [
        ("/loop-a", 302), ("/loop-b", 301), ("/loop-a", "loop")]
    assert pages["/moved-final"]["depth"] == 1  # a hop is no click
    chains = {row[0].removeprefix(site.url): row for row in done.redirect_chains()}
    assert chains["/moved"][1:] == (4, " → ".join(f"{code} {site.url}{path}" for code, path in (
        (301, "/moved"), (302, "/moved-again"), (307, "/moved-last"), (308, "/moved-final"), (200, "/about"))),
        f"{site.url}/about", 200)
    assert chains["/old"][1] == 1


def test_the_findings_are_those_an_seo_expects(audited, site):
    done, pages = audited
    found = {finding.id: count for finding, count in done.findings() if finding in CORE}  # the rest: test_server_audit
    assert found == {"broken": 2, "redirect_chain": 5, "redirect": 7, "missing_title": 0, "duplicate_title": 2,
                     "missing_description": 0, "duplicate_description": 2, "missing_h1": 0, "multiple_h1": 0,
                     "not_indexable": 3, "canonical_elsewhere": 1, "sitemap_orphan": 1, "blocked": 1, "slow": 1,
                     "truncated": 1, "refused": 0}

    def paths(finding):
        where = next(f for f, _ in done.findings() if f.id == finding).where
        return sorted(row[0].removeprefix(site.url) for row in done.db.execute(f"SELECT url FROM page WHERE {where}"))

    assert paths("broken") == ["/error", "/missing"]
    assert done.linked_from(f"{site.url}/missing") == [f"{site.url}/"]
    assert sorted((s.removeprefix(site.url), t.removeprefix(site.url), str(why))
                  for s, t, why in done.broken_links()) == [("/", "/error", "500"), ("/", "/missing", "404")]
    assert paths("redirect_chain") == ["/loop-a", "/loop-b", "/moved", "/moved-again", "/moved-last"]
    assert paths("duplicate_title") == ["/dup/1", "/dup/2"]
    assert paths("not_indexable") == ["/canonical", "/header-noindex", "/noindex"]
    assert pages["/header-noindex"]["not_indexable_why"] == "noindex in the X-Robots-Tag header"
    assert paths("sitemap_orphan") == [ORPHAN] and pages[ORPHAN]["depth"] is None
    assert paths("blocked") == ["/private/secret"] and "/private/secret" not in [p for _, p in site.requests]
    assert paths("slow") == ["/slow"] and paths("truncated") == ["/huge"]
    assert pages["/huge"]["size"] >= HUGE  # as the server said; the crawl read the first megabyte


def test_a_finished_crawl_keeps_its_findings_and_sorts_through_indexes(audited):
    """Once a crawl ends, each finding's pages are kept with their count (the pages its condition finds), and each
    sort of the explorer reads an index in its order, ties included: at 100,000 pages, testing and sorting every page
    took 100 to 300 ms a view (scripts/bench times every view)."""
    done, _ = audited
    for finding, count in done.findings():
        where, args = done.found(finding.id)
        kept = {row[0] for row in done.db.execute(f"SELECT id FROM page WHERE {where}", args)}
        assert kept == {row[0] for row in done.db.execute(f"SELECT id FROM page WHERE {CRAWLED} AND {finding.where}")}
        assert len(kept) == count, finding.id
    for column in ("url", "status", "title", "depth", "inlinks", "outlinks", "words", "seconds"):
        for way in ("ASC", "DESC"):
            plan = " ".join(row[3] for row in done.db.execute(
                f"EXPLAIN QUERY PLAN SELECT id, url, title FROM page WHERE {CRAWLED} "
                f"ORDER BY {column} {way} NULLS LAST, id {way} LIMIT 50 OFFSET 50"))
            assert "INDEX" in plan and "TEMP B-TREE" not in plan, (column, way, plan)


def test_non_html_answers_and_pages_past_the_depth_limit_are_kept_but_not_parsed(audited):
    done, pages = audited
    assert (pages["/report.pdf"]["content_type"], pages["/report.pdf"]["title"]) == ("application/pdf", None)
    assert pages["/data.json"]["not_indexable_why"] == "not HTML" and pages["/data.json"]["words"] is None
    calendar = sorted((row["depth"], row["state"]) for path, row in pages.items() if path.startswith("/calendar"))
    assert calendar == [(1, "done"), (2, "done"), (3, "done"), (4, "done"), (5, "beyond")]  # the endless calendar


def test_a_page_limit_and_the_concurrency_are_kept_to(tmp_path, site):
    site.most_in_flight = 0
    limited = crawl(tmp_path, site, max_pages=6, concurrency=2)
    assert limited.status == "limit" and limited.progress().done == 6
    assert limited.progress().queued > 0  # the rest of the frontier, kept for later
    assert site.most_in_flight <= 2


def test_each_request_to_the_site_waits_the_delay(tmp_path, site, monkeypatch):
    departures, wait_turn = [], Crawl.wait_turn

    async def timed_turn(crawl, host):
        await wait_turn(crawl, host)
        departures.append(time.monotonic())  # the request leaves now (arrivals jitter on a busy machine)

    monkeypatch.setattr(Crawl, "wait_turn", timed_turn)
    before = len(site.requests)
    crawl(tmp_path, site, max_pages=5, max_depth=1, delay=0.2, concurrency=4)
    assert len(departures) == len(site.requests) - before >= 6  # robots.txt, the sitemaps, 5 pages: each waited
    # 10% of slack for the process being descheduled between a turn's start and its timing here
    assert min(later - earlier for earlier, later in zip(departures, departures[1:])) >= 0.18


def test_robots_txt_is_read_for_the_user_agent_chosen(tmp_path, site):
    picky = crawl(tmp_path, site, user_agent="Mozilla/5.0 (compatible; pickybot/1.0)", robots_sitemaps=False)
    assert [(row["state"], row["not_indexable_why"]) for row in picky.db.execute("SELECT * FROM page")] == [
        ("blocked", "blocked by robots.txt")]
    assert picky.progress().done == 0


def test_a_crawl_can_start_from_a_gzipped_sitemap_through_its_index(tmp_path, site):
    mapped = crawl(tmp_path, site, start="", sitemaps=[f"{site.url}/sitemap-index.xml"], max_depth=0)
    rows = mapped.db.execute("SELECT url, depth, state, in_sitemap FROM page WHERE in_sitemap = 1").fetchall()
    assert sorted(tuple(row) for row in rows) == [(f"{site.url}{path}", 0, "done", 1)
                                                  for path in ("/", "/about", ORPHAN)]
    assert mapped.db.execute("SELECT note FROM crawl").fetchone()[0] == "3 URLs in the sitemaps"


def test_the_first_pages_are_crawled_while_a_sitemap_is_still_arriving(tmp_path, site):
    site.release.clear()
    settings = Settings(start=f"{site.url}/about", sitemaps=[f"{site.url}/held/sitemap"], delay=0, timeout=30,
                        max_depth=0)
    crawl = Crawl(tmp_path / "held.db", settings)

    async def crawled_before_the_sitemap():
        running = asyncio.create_task(crawl.run())
        done = "SELECT count(*) FROM page WHERE url LIKE '%/about' AND state = 'done'"
        async with asyncio.timeout(20):  # a crawl that waits for its sitemaps never gets there
            while not crawl.db.execute(done).fetchone()[0]:
                assert not running.done()
                await asyncio.sleep(0.02)
        assert site.held_now == 1 and crawl.db.execute("SELECT seeded FROM crawl").fetchone()[0] == 0
        site.release.set()  # the sitemap (no XML: refused) arrives once the start page is crawled
        await running

    try: asyncio.run(crawled_before_the_sitemap())
    finally: site.release.set()
    assert crawl.status == "done" and crawl.db.execute("SELECT seeded FROM crawl").fetchone()[0] == 1
    crawl.close()


def test_a_new_crawls_file_is_never_seen_half_made(tmp_path):
    "The app's pages open a crawl's file while the crawl makes it: there is no file yet, or a whole one."
    problems, made = [], threading.Event()
    for n in range(50):
        path = tmp_path / f"{n}.db"

        def read():
            while not made.is_set():
                try: Crawl(path).close()
                except FileNotFoundError: pass
                except Exception as problem: problems.append(problem)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try: Crawl(path, Settings(start="https://example.com/")).close()
        finally:
            made.set()
            reader.join(10)
            made.clear()
    assert problems == [] and not list(tmp_path.glob("*.part*"))
    assert all(Crawl(tmp_path / f"{n}.db").settings.start == "https://example.com/" for n in range(50))


def test_a_stopped_crawl_resumes_from_its_frontier_and_fetches_nothing_twice(tmp_path, site):
    path, before = tmp_path / "resumed.db", len(site.requests)
    first = Crawl(path, Settings(start=f"{site.url}/", delay=0, timeout=5, max_depth=3, concurrency=2))

    async def stop_soon(progress):
        if progress.done >= 4: first.stop()

    asyncio.run(first.run(stop_soon))
    stopped_at = first.progress().done
    assert first.status == "stopped" and stopped_at >= 4
    crawled = {url.removeprefix(site.url) for url, in first.db.execute("SELECT url FROM page WHERE state = 'done'")}
    first.close()

    middle = len(site.requests)
    again = Crawl(path)  # the settings come from the file
    asyncio.run(again.run())
    assert again.status == "done" and again.settings.max_depth == 3 and again.progress().done > stopped_at
    fetched = [path for _, path in site.requests[before:] if path != "/robots.txt"]
    assert len(fetched) - len(set(fetched)) <= 2  # at most the pages at work, stopped after STOP_GRACE
    assert not crawled & {path for _, path in site.requests[middle:]}
    assert again.progress().done == again.db.execute("SELECT count(*) FROM page WHERE state = 'done'").fetchone()[0]


def test_the_csv_and_the_workbook_hold_every_page_and_no_formula(audited, tmp_path, site):
    done, pages = audited
    path = done.write_csv(tmp_path / "pages.csv")
    with path.open(newline="") as file:
        rows = {row["url"].removeprefix(site.url): row for row in csv.DictReader(file)}
    assert rows.keys() == {p for p, row in pages.items() if row["state"] in ("done", "blocked")}
    assert rows["/formula"]["title"] == "'" + FORMULA and rows["/moved"]["redirect_to"] == f"{site.url}/moved-again"

    book = openpyxl.load_workbook(done.write_xlsx(tmp_path / "crawl.xlsx"))
    assert book.sheetnames == ["Pages", "Findings", "Broken links", "Redirect chains",
                               "Broken external links"]
    titles = {row[0].value.removeprefix(site.url): row[4] for row in book["Pages"].iter_rows(min_row=2)}
    assert (titles["/formula"].value, titles["/formula"].data_type) == (FORMULA, "s")  # text, never a formula
    assert book["Pages"].max_row == len(rows) + 1 and book["Broken links"].max_row == 3
    assert [row[0].value for row in book["Findings"].iter_rows(min_row=2, max_row=2)] == [
        "Broken pages (4xx, 5xx or no answer)"]


def test_parse_page_reads_what_a_browser_would():
    parsed = parse_page(b"""<!doctype html><html><head><title> A &amp; B </title><base href="/docs/">
        <meta name="Description" content=" Words  here "><link rel="canonical" href="page">
        <meta name="robots" content="index, nofollow"></head><body><h1>One <b>h1</b></h1><h1>Two</h1>
        <script>var not = "words";</script><p>Three words here</p><a href="next">n</a>
        <a href="mailto:x@example.com">m</a><a href="/away" rel="sponsored nofollow">a</a></body></html>""",
                        "utf-8", "https://example.com/docs/index.html")
    assert (parsed.title, parsed.description, parsed.canonical) == ("A & B", "Words here",
                                                                    "https://example.com/docs/page")
    assert parsed.h1 == ["One h1", "Two"] and parsed.meta_robots == "index, nofollow"
    assert parsed.links == [("https://example.com/docs/next", False), ("https://example.com/away", False)]
    assert parsed.words == 3 + 3 + 3  # the h1s, the paragraph and the three links' text; never the script


def test_custom_extraction_keeps_every_fields_matches_in_a_column_of_its_own_and_the_csv(tmp_path, site):
    fields = {"heading": "h1", "robots": "meta[name=robots]::attr(content)", "links": "li a::attr(href)"}
    done = crawl(tmp_path, site, max_depth=1, extract=fields)
    pages = {row["url"].removeprefix(site.url): dict(row) for row in done.db.execute("SELECT * FROM page")}
    assert (pages["/noindex"]["x_heading"], pages["/noindex"]["x_robots"]) == ("Not to index", "noindex, follow")
    assert (pages["/about"]["x_heading"], pages["/about"]["x_robots"], pages["/about"]["x_links"]) == (
        "About us", None, "/")
    assert pages["/"]["x_links"].startswith("/about | /old | /moved | ")
    assert pages["/report.pdf"]["x_heading"] is None  # not HTML: nothing read
    with done.write_csv(tmp_path / "pages.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert {row["url"].removeprefix(site.url): row["x_robots"] for row in rows}["/noindex"] == "noindex, follow"
    done.close()


@needs_chromium
def test_rendering_javascript_finds_the_links_and_titles_only_scripts_make(tmp_path, site, monkeypatch):
    monkeypatch.setattr(rendering, "CHROMIUM", CHROMIUM)
    for start in ("/js", "/js-moved"):
        served = crawl(tmp_path, site, name=f"served{start[1:]}", start=f"{site.url}{start}", max_depth=1,
                       robots_sitemaps=False)
        assert f"{site.url}/js-only" not in {row["url"] for row in served.db.execute("SELECT url FROM page")}
        served.close()
    asked = len(site.requests)
    done = crawl(tmp_path, site, start=f"{site.url}/js", max_depth=1, robots_sitemaps=False, render_js=True)
    pages = {row["url"].removeprefix(site.url): dict(row) for row in done.db.execute("SELECT * FROM page")}
    assert pages["/js"]["title"] == "As rendered" and pages["/js"]["raw_title"] == "As served"
    assert (pages["/js"]["canonical"], pages["/js"]["raw_canonical"]) == (f"{site.url}/about", f"{site.url}/js")
    assert (pages["/js"]["meta_robots"], pages["/js"]["raw_meta_robots"], pages["/js"]["indexable"]) == ("noindex", "", 0)
    assert pages["/js"]["js_links"] == 1 and pages["/js-only"]["status"] == 200 and pages["/js-only"]["depth"] == 1
    assert [path for _, path in site.requests[asked:]].count("/js") == 1  # rendered from the crawl's answer
    found = {finding.id: count for finding, count in done.findings()}
    assert (found["js_links"], found["js_title"], found["js_canonical"], found["js_robots"]) == (1, 1, 1, 1)
    done.close()
    moved = crawl(tmp_path, site, name="moved", start=f"{site.url}/js-moved", max_depth=0, robots_sitemaps=False,
                  render_js=True)
    [(title, redirect)] = moved.db.execute("SELECT title, js_redirect FROM page WHERE url LIKE '%/js-moved'")
    assert (title, redirect) == ("Moved by a script", f"{site.url}/about")
    moved.close()


def test_rendering_javascript_without_chromium_is_refused_with_what_to_do(monkeypatch):
    monkeypatch.setattr(rendering, "CHROMIUM", "/nowhere/chromium")
    with pytest.raises(ValueError, match="Rendering JavaScript needs Chromium: install it"):
        Settings(start="https://example.com/", render_js=True)


def test_custom_extraction_fields_are_refused_with_the_reason():
    assert parse_fields("Product price: span.price\n\nimage: meta[property='og:image']::attr(content)") == {
        "product_price": "span.price", "image": "meta[property='og:image']::attr(content)"}
    for text, reason in (("price span.price", "“price span.price” is not a field: write name: CSS selector."),
                         ("9lives: p", "“9lives” cannot name a field"),
                         ("price: p[[", "“p[[” is not a CSS selector (for price)."),
                         ("a: p\na: div", "Two fields are named “a”."),
                         ("\n".join(f"f{n}: p" for n in range(11)), "That is 11 fields; a crawl extracts at most 10.")):
        with pytest.raises(ValueError) as refused: parse_fields(text)
        assert str(refused.value).startswith(reason)
    with pytest.raises(ValueError): Settings(start="https://example.com/", extract={"price": "p[["})


def test_the_file_is_plain_sqlite_for_any_tool(audited):
    done, _ = audited
    with sqlite3.connect(done.path) as other:
        assert other.execute("SELECT count(*) FROM page WHERE status = 200").fetchone()[0] >= 15
    other.close()


@shipped("notebooks/site_crawl.ipynb")
def test_the_starter_notebook_crawls_headless(site, tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))  # the kernel's config.py keeps the crawl there
    text = run_notebook(NOTEBOOK, f'START = "{site.url}/"\nSITEMAPS = []\nMAX_PAGES = 30\nMAX_DEPTH = 2\n'
                                  'DELAY = 0\nNAME = "local-site"\n')
    assert "Duplicate titles: 2" in text and "Redirect chains and loops: 5" in text
    assert (tmp_path / "data" / "crawls" / "local-site.db").exists()
    assert (tmp_path / "data" / "crawls" / "local-site.xlsx").exists()
