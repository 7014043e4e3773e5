"""The SEO audit against the trap site of tests/audit_site.py: each finding with its exact pages, read from the crawl
(crawler.py), through the app's routes (the findings list, the explorer's filter, the CSV and the workbook)."""

import asyncio
import csv
import html
import io
import re
import subprocess
import sqlite3
import sys
import tracemalloc

import openpyxl
import pytest

from audit_site import ARTICLE, LASTMOD, SITEMAP, AuditSite, OtherSite
from conftest import ROOT, free_port, served, shipped
from core.seo.crawl_file import FINDING
from core.seo.crawler import Crawl, Settings
from core.seo.onpage import pixels
from core.seo.parsing import parse_page
from core.seo.sitemaps import lastmod_problem
from core.seo.validation import NUM_PERM, lsh_bands, near_duplicates

# The pages each finding lists on the trap site (the findings of the other checks are in test_server_crawler.py).
EXPECTED = {
    "broken": ["/gone"], "redirect": ["/moved"], "blocked": ["/blocked/page"],
    "not_indexable": ["/canonical-404", "/canonical-noindex", "/canonical-redirect", "/noindex"],
    "canonical_elsewhere": ["/canonical-404", "/canonical-noindex", "/canonical-redirect"],
    "sitemap_orphan": ["/orphan"],
    "sitemap_broken": ["/gone"], "sitemap_redirect": ["/moved"], "sitemap_not_indexable": ["/noindex"],
    "sitemap_blocked": ["/blocked/page"], "not_in_sitemap": ["/about"],
    "sitemap_lastmod": ["/gone", "/orphan", "/short"],
    "title_long": ["/long"], "title_short": ["/short"], "description_long": ["/long"], "description_short": ["/short"],
    "images_no_alt": ["/images"], "jsonld_invalid": ["/bad-jsonld"], "structured_data": ["/jsonld"],
    "nofollow": ["/header-nofollow", "/nofollow"], "x_robots_tag": ["/header-nofollow"],
    "nofollow_links": ["/sponsored"],
    "pagination": ["/list", "/list/2"], "pagination_broken": ["/list/2"],
    "canonical_broken": ["/canonical-404"], "canonical_redirect": ["/canonical-redirect"],
    "canonical_not_indexable": ["/canonical-noindex"],
    "hreflang_bad_code": ["/en"], "hreflang_no_self": ["/fr"], "hreflang_no_return": ["/en"],
    "hreflang_broken": ["/en"],
    "near_duplicate": ["/article", "/article-copy"],
    "external_broken": ["/"],
}


@pytest.fixture(scope="module")
def other():
    with served(OtherSite()) as other:
        yield other


@pytest.fixture(scope="module")
def site(other):
    with served(AuditSite()) as site:
        site.elsewhere = other.url
        yield site


@pytest.fixture(scope="module")
def audited(site, tmp_path_factory):
    crawl = Crawl(tmp_path_factory.mktemp("audit") / "audit.db",
                  Settings(start=f"{site.url}/", delay=0, timeout=5, check_external=True))
    asyncio.run(crawl.run())
    yield crawl
    crawl.close()


def listed(crawl: Crawl, finding: str, site) -> list[str]:
    "The paths of a finding's pages, sorted."
    return sorted(row[0].removeprefix(site.url) for row in
                  crawl.db.execute(f"SELECT url FROM page WHERE {FINDING[finding].where}"))


def test_every_finding_lists_exactly_the_traps(audited, site):
    found = {finding.id: listed(audited, finding.id, site) for finding, count in audited.findings() if count}
    assert found == EXPECTED
    assert {finding.id: count for finding, count in audited.findings() if count} == {
        finding: len(pages) for finding, pages in EXPECTED.items()}


def test_a_relative_sitemap_line_is_read_against_robots_txt(audited, site):
    assert "/sitemap.xml" in [path for _, path in site.requests]
    assert audited.note == f"{len(SITEMAP)} URLs in the sitemaps" == "22 URLs in the sitemaps"
    orphan = audited.db.execute("SELECT depth, inlinks FROM page WHERE url = ?", [f"{site.url}/orphan"]).fetchone()
    assert tuple(orphan) == (None, 0)


def test_each_lastmod_is_kept_with_what_is_wrong_with_it(audited, site):
    rows = {url.removeprefix(site.url): (lastmod, problem) for url, lastmod, problem in audited.db.execute(
        "SELECT url, lastmod, lastmod_problem FROM page WHERE lastmod IS NOT NULL")}
    assert rows == {"/": ("2026-01-05", None), "/orphan": ("2999-01-01", "in the future"),
                    "/gone": ("last week", "not a W3C date"), "/long": ("2025-06", None),
                    "/short": ("2025-06-31", "not a W3C date")}
    assert rows.keys() == LASTMOD.keys()
    assert [lastmod_problem(text) for text in ("2025", "2025-06-30T10:00Z", "2025-06-30T10:00:00.5+02:00",
                                               "2025-06-30 10:00", "30/06/2025")] == [
        None, None, None, "not a W3C date", "not a W3C date"]


def test_each_page_has_its_on_page_facts(audited, site):
    def facts(path, *columns):
        row = audited.db.execute(f"SELECT {', '.join(columns)} FROM page WHERE url = ?", [site.url + path]).fetchone()
        return tuple(row)

    assert facts("/", "title", "title_chars", "title_px") == ("Home | Audit trap site for the tests", 36, 302)
    assert facts("/long", "title_chars", "title_px", "description_chars", "description_px") == (106, 902, 260, 1584)
    assert facts("/images", "images", "images_no_alt") == (4, 2)
    assert facts("/jsonld", "jsonld_types", "jsonld_errors", "microdata_types") == (
        "Article, BreadcrumbList", 0, "Product")
    assert facts("/bad-jsonld", "jsonld_types", "jsonld_errors") == (None, 1)
    assert facts("/list/2", "rel_prev", "rel_next") == (f"{site.url}/list", f"{site.url}/gone")
    assert facts("/sponsored", "nofollow_links") == (1,)


def test_pixel_widths_are_arials_and_mixed_content_is_counted_on_https_pages():
    assert pixels("Home", 20) == round((722 + 556 + 833 + 556) * 20 / 1000) == 53  # Arial's widths, 20 px
    assert pixels("é", 1000) == pixels("e", 1000) == 556 and pixels("日本", 1000) == 2000
    page = b"""<html><head><link rel="stylesheet" href="http://cdn.example/a.css"><script src="/b.js"></script>
        </head><body><img src="http://cdn.example/c.png" alt="c"><iframe src="https://video.example/"></iframe>
        <a href="http://example.com/">a link is no resource</a></body></html>"""
    assert parse_page(page, "utf-8", "https://example.com/").columns["mixed_content"] == 2
    assert parse_page(page, "utf-8", "http://example.com/").columns["mixed_content"] == 0


def test_hreflang_and_near_duplicates_are_judged_against_the_crawl(audited, site):
    problems = {url.removeprefix(site.url): text for url, text in audited.db.execute(
        "SELECT url, hreflang_problems FROM page WHERE hreflang_problems IS NOT NULL")}
    assert problems == {"/en": f"bad code: english; no return link from {site.url}/de; "
                               f"to a page answering 404: {site.url}/gone",
                        "/fr": "no self-reference"}
    similar = {url.removeprefix(site.url): (twin.removeprefix(site.url), similarity) for url, twin, similarity in
               audited.db.execute("SELECT url, near_duplicate_of, similarity FROM page WHERE similarity IS NOT NULL")}
    assert similar == {"/article": ("/article-copy", 0.969), "/article-copy": ("/article", 0.969)}
    assert list(near_duplicates(audited.db, 0.99)) == []  # the person's threshold decides
    long_page = f"<p>{ARTICLE}</p>".encode()
    assert parse_page(long_page, "utf-8", site.url).columns["minhash"] is not None
    assert parse_page(long_page, "utf-8", site.url, minhash=False).columns["minhash"] is None  # 0: not looked for


def test_near_duplicates_take_about_100_bytes_a_page_with_datasketchs_bands():
    "What lets a million pages' check stay small: 8 bits of each MinHash value kept, and LSH's bands without scipy."
    from datasketch import MinHashLSH
    import numpy
    for threshold in (n / 100 for n in range(5, 96)):
        lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        assert lsh_bands(threshold) == (lsh.b, lsh.r), threshold
    pages, random = 200_000, numpy.random.default_rng(1)
    hashes = random.integers(0, 2 ** 32, size=(pages, NUM_PERM), dtype=numpy.uint32)
    hashes[99::100] = hashes[98::100]  # every 100th page a near-copy of the one before: 60 of its 64 values
    hashes[99::100, :4] = random.integers(0, 2 ** 32, size=(pages // 100, 4), dtype=numpy.uint32)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE page (id INTEGER PRIMARY KEY, url TEXT, state TEXT, status INT, html INT, minhash BLOB)")
    db.executemany("INSERT INTO page VALUES (?, ?, 'done', 200, 1, ?)",
                   ((n, f"/{n}", hashes[n].tobytes()) for n in range(pages)))
    tracemalloc.start()
    try: found = list(near_duplicates(db, 0.9))
    finally: peak = tracemalloc.get_traced_memory()[1]; tracemalloc.stop()
    assert sorted((twin, page) for twin, _, page in found) == sorted(
        [(n - 1, n) for n in range(99, pages, 100)] + [(n, n - 1) for n in range(99, pages, 100)])
    assert all(abs(similarity - 60 / 64) < 0.05 for _, similarity, _ in found)
    assert peak < 160 * pages, f"{peak / pages:.0f} bytes a page"  # the values as they are: 256 bytes a page alone


def test_external_links_are_checked_head_first_then_get(audited, site, other):
    assert [(url.removeprefix(other.url), status) for url, status in audited.db.execute(
        "SELECT url, status FROM external ORDER BY url")] == [("/fine", 200), ("/missing", 404)]
    assert sorted(other.requests_made) == [("GET", "/fine"), ("GET", "/missing"), ("HEAD", "/fine"),
                                           ("HEAD", "/missing")]
    from core.seo.link_check import broken
    assert [tuple(row) for row in broken(audited.db)] == [(f"{site.url}/", f"{other.url}/missing", 404)]


@shipped("plugins/025_site_crawl.py")
def test_the_app_lists_filters_and_exports_every_finding(live, site, other):
    from test_server_site_crawl import done_page, rows, start

    key = start(live, f"{site.url}/", check_external="1")
    page = html.unescape(done_page(live))
    counts = dict(re.findall(r"<span[^>]*>([^<]+)</span>\s*<button[^>]*>([\d,]+)</button>", page))
    assert {FINDING[finding].label: str(len(pages)) for finding, pages in EXPECTED.items()}.items() <= counts.items()
    for finding, pages in EXPECTED.items():
        assert sorted("/" + path for path in rows(live, key, finding=finding)) == pages, finding
    table = list(csv.DictReader(io.StringIO(
        live.get(f"/site_crawl/runs/{key}/pages.csv", params={"finding": "sitemap_lastmod", "sort": "url"}).text)))
    assert [(row["url"].removeprefix(site.url), row["lastmod"], row["lastmod_problem"]) for row in table] == [
        ("/gone", "last week", "not a W3C date"), ("/orphan", "2999-01-01", "in the future"),
        ("/short", "2025-06-31", "not a W3C date")]
    detail = re.search(r'hx-get="(/site_crawl/runs/[\w-]+/pages/\d+)"',
                       live.get(f"/site_crawl/runs/{key}/pages", params={"q": "/jsonld"}).text)[1]
    shown = html.unescape(live.get(detail).text)
    assert "JSON-LD: Article, BreadcrumbList; microdata: Product" in shown
    assert "title 47 characters, 385 px; description 103 characters, 629 px" in shown
    book = openpyxl.load_workbook(io.BytesIO(live.get(f"/site_crawl/runs/{key}/crawl.xlsx").content))
    header = [cell.value for cell in book["Pages"][1]]
    assert {"lastmod", "lastmod_problem", "title_px", "images_no_alt", "jsonld_types", "mixed_content",
            "hreflang_problems", "near_duplicate_of", "similarity"} <= set(header) and "minhash" not in header
    findings = {row[0].value: row[1].value for row in book["Findings"].iter_rows(min_row=2)}
    assert [[cell.value for cell in row] for row in book["Broken external links"].iter_rows(min_row=2)] == [
        [f"{site.url}/", f"{other.url}/missing", 404]]
    assert {FINDING[finding].label: len(pages) for finding, pages in EXPECTED.items()}.items() <= findings.items()


def crawl_cli(*args: str) -> subprocess.CompletedProcess:
    "./run crawl's program, with the tests' DATA_DIR (the server module's too)."
    return subprocess.run([sys.executable, "-m", "core.seo.crawl_cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@shipped("plugins/025_site_crawl.py")
def test_a_headless_crawl_is_a_run_the_app_shows(live, site, other):
    from test_server_site_crawl import done_page, rows

    done = crawl_cli(f"{site.url}/", "--delay", "0", "--timeout", "5", "--near-duplicates", "0.9")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"Crawled \d+ pages of 127\.0\.0\.1 \(every page within the limits\): 1 error, 1 blocked "
                        r"by robots\.txt, 0 left in the queue\.", lines[0])
    listed = {found[3]: int(found[2].replace(",", "")) for line in lines[1:-1]
              if (found := re.fullmatch(r"\s+(error|warning|notice)\s+([\d,]+)\s+(.+)", line))}
    assert len(listed) == len(lines) - 2
    assert listed == {FINDING[finding].label: len(pages) for finding, pages in EXPECTED.items()}
    key = re.search(r"Saved as run ([\w-]+) of the Site crawl app", lines[-1])[1]
    assert re.search(r"\d+ pages? crawled", done.stderr)  # the progress

    page = html.unescape(done_page(live))
    assert f'value="{key}" selected' in page or f'id="run-{key}"' in page
    assert sorted("/" + path for path in rows(live, key, finding="hreflang_no_return")) == ["/en"]
    assert sorted("/" + path for path in rows(live, key, finding="external_broken")) == ["/"]


def test_a_headless_crawl_that_fails_exits_non_zero():
    failed = crawl_cli(f"http://127.0.0.1:{free_port()}/", "--timeout", "2", "--no-robots-sitemaps")
    assert failed.returncode == 1 and "No page answered: the crawl failed." in failed.stderr
    refused = crawl_cli("--max-pages", "3")
    assert refused.returncode == 2 and "give a URL, a --sitemap, or both" in refused.stderr
