"""The SEO audit against the trap site of tests/audit_site.py: each finding with its exact pages, read from the crawl
(crawler.py), through the app's routes (the findings list, the explorer's filter, the CSV and the workbook)."""

import asyncio
import csv
import html
import io
import re

import openpyxl
import pytest

from audit_site import LASTMOD, AuditSite
from conftest import served, shipped
from crawler import FINDING, Crawl, Settings
from sitemaps import lastmod_problem

# The pages each finding lists on the trap site (the findings of the other checks are in test_server_crawler.py).
EXPECTED = {
    "broken": ["/gone"], "redirect": ["/moved"], "not_indexable": ["/noindex"], "blocked": ["/blocked/page"],
    "sitemap_orphan": ["/orphan"],
    "sitemap_broken": ["/gone"], "sitemap_redirect": ["/moved"], "sitemap_not_indexable": ["/noindex"],
    "sitemap_blocked": ["/blocked/page"], "not_in_sitemap": ["/about"],
    "sitemap_lastmod": ["/gone", "/orphan", "/short"],
}


@pytest.fixture(scope="module")
def site():
    with served(AuditSite()) as site:
        yield site


@pytest.fixture(scope="module")
def audited(site, tmp_path_factory):
    crawl = Crawl(tmp_path_factory.mktemp("audit") / "audit.db", Settings(start=f"{site.url}/", delay=0, timeout=5))
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
    assert audited.note == "16 URLs in the sitemaps"
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


@shipped("plugins/025_site_crawl.py")
def test_the_app_lists_filters_and_exports_every_finding(live, site):
    from test_server_site_crawl import done_page, rows, start

    key = start(live, f"{site.url}/")
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
    book = openpyxl.load_workbook(io.BytesIO(live.get(f"/site_crawl/runs/{key}/crawl.xlsx").content))
    header = [cell.value for cell in book["Pages"][1]]
    assert {"lastmod", "lastmod_problem"} <= set(header)
    findings = {row[0].value: row[1].value for row in book["Findings"].iter_rows(min_row=2)}
    assert {FINDING[finding].label: len(pages) for finding, pages in EXPECTED.items()}.items() <= findings.items()
