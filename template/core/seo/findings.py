"""What a crawl found, as findings: each one an SQL condition on the crawl's page table (see crawler.py), counted
for the findings list, used as a filter of the explorer and as a sheet of the workbook.

The core findings are here (status, redirects, titles, descriptions, h1, indexability, robots.txt, speed, size);
the sitemap audit's are in sitemaps.py, the on-page checks' in onpage.py; crawl_file.FINDINGS is all of them in order.
"""

from dataclasses import dataclass

from core.seo.url_checker import REDIRECT_CODES

SLOW = 1.0  # seconds: a page slower than this is a finding
CRAWLED = "state IN ('done', 'blocked', 'refused')"  # refused: a robots.txt or sitemap not read (crawl_file.CrawlFile.refuse)
HTML_200 = "state = 'done' AND status = 200 AND html = 1"
BROKEN = "state = 'done' AND (status >= 400 OR status IS NULL OR error IS NOT NULL)"  # error: its body failed
REDIRECTS = f"status IN ({', '.join(map(str, sorted(REDIRECT_CODES)))})"


@dataclass
class Finding:
    id: str
    label: str
    where: str  # an SQL condition on page
    level: str = "warning"  # error, warning or notice
    why: str = ""


CORE = [
    Finding("broken", "Broken pages (4xx, 5xx or no answer)", BROKEN, "error", "Links to them lead nowhere: fix the links or the pages."),
    Finding("redirect_chain", "Redirect chains and loops",
            f"{REDIRECTS} AND redirect_to IN (SELECT url FROM page WHERE {REDIRECTS})", "error",
            "Each extra hop costs a round trip, and a loop never ends: link to the last URL."),
    Finding("redirect", "Redirects", REDIRECTS, "notice", "Links to them cost a hop: link to where they lead."),
    Finding("missing_title", "Missing titles", f"{HTML_200} AND coalesce(title, '') = ''", "error"),
    Finding("duplicate_title", "Duplicate titles", f"{HTML_200} AND title IN (SELECT title FROM page WHERE "
            f"{HTML_200} AND title != '' GROUP BY title HAVING count(*) > 1)", "warning",
            "Pages with the same title compete with each other in search results."),
    Finding("missing_description", "Missing meta descriptions", f"{HTML_200} AND coalesce(description, '') = ''"),
    Finding("duplicate_description", "Duplicate meta descriptions", f"{HTML_200} AND description IN (SELECT "
            f"description FROM page WHERE {HTML_200} AND description != '' GROUP BY description HAVING count(*) > 1)"),
    Finding("missing_h1", "Missing h1", f"{HTML_200} AND h1_count = 0", "notice"),
    Finding("multiple_h1", "More than one h1", f"{HTML_200} AND h1_count > 1", "notice"),
    Finding("not_indexable", "Non-indexable pages (answer 200)", f"{HTML_200} AND indexable = 0", "warning",
            "noindex, or a canonical that points elsewhere: search engines will not index them."),
    Finding("canonical_elsewhere", "Canonical pointing elsewhere", "canonical IS NOT NULL AND canonical != url",
            "notice"),
    Finding("sitemap_orphan", "In the sitemap, linked from nowhere", "in_sitemap = 1 AND inlinks = 0 AND "
            f"{CRAWLED}", "warning", "Nothing on the site links to them: link them, or drop them from the sitemap."),
    Finding("blocked", "Blocked by robots.txt", "state = 'blocked'", "notice"),
    Finding("slow", f"Slow pages (over {SLOW:g} s)", f"state = 'done' AND seconds > {SLOW}", "warning"),
    Finding("truncated", "Pages larger than the size cap", "truncated = 1", "warning"),
    Finding("refused", "Not read or not followed", "refused IS NOT NULL", "warning",
            "The crawler would not read or follow these (each says why): a sitemap too large or unsafe, a robots.txt "
            "it could not read, a redirect or links to addresses that are no web pages."),
]
