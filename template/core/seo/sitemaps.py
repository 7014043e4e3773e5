"""Sitemaps read, and the sitemap audit: what the sitemaps say against what the crawl found.

crawler.py reads the sitemaps through get_sitemap (plain or gzipped, bounded by fetching.read_body, parsed by the
standard library's streaming XML parser; robots.txt's Sitemap lines resolved here, against robots.txt's own URL, as
the sitemaps.org protocol and Google read a relative one) and keeps, for each URL a sitemap lists, its <lastmod> and
what is wrong with it. The findings: URLs a sitemap lists that are broken, redirected, blocked or not indexable
(a sitemap should list only the canonical, indexable URLs), indexable pages no sitemap lists, and lastmod dates
that are in the future or no W3C date at all.
"""

import asyncio
import re
from datetime import datetime, timedelta, timezone
from xml.etree.ElementTree import ParseError, XMLPullParser

import httpx

from core.seo.fetching import Refused, read_body, size, web_url
from core.seo.findings import CRAWLED, HTML_200, REDIRECTS, Finding

# The page table's columns this audit adds (crawl_file.connect adds them to a crawl's file that lacks them).
COLUMNS = {"lastmod": "TEXT", "lastmod_problem": "TEXT"}
# W3C Datetime (https://www.w3.org/TR/NOTE-datetime), which sitemaps.org asks for: a year, a month, a day, or a
# day and a time with its zone; the seconds and their fractions may be left out.
W3C_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?)?)?")
SLACK = timedelta(days=1)  # a date this far ahead is a time zone, not the future
READ_SITEMAPS = "EXISTS (SELECT 1 FROM page WHERE in_sitemap = 1)"


def from_robots(lines: list[str], robots_url: str) -> list[str]:
    """robots.txt's Sitemap lines as absolute URLs (a relative one, Sitemap: /sitemap.xml, against robots.txt's URL),
    as fetching.web_url makes them: a line that is no web address is left out."""
    base, found = httpx.URL(robots_url), []
    for line in lines:
        try: url = web_url(line, base)
        except Refused: continue
        if url: found.append(str(url))
    return found


async def get_sitemap(client: httpx.AsyncClient, url: str, limit: int, seconds: float,
                      most: int) -> tuple[str, list[tuple[str, str | None]]]:
    """(urlset or sitemapindex, its first `most` <loc>s with their <lastmod>) of the sitemap at url, plain or gzipped,
    within `seconds`: read whole up to `limit` bytes unpacked, then parsed in a thread. Refused says why it was not
    read."""
    async with asyncio.timeout(seconds), client.stream("GET", url) as response:
        if response.status_code != 200: raise Refused(f"it answered HTTP {response.status_code}")
        body, more = await read_body(response, limit, gzip_file=True)
    if more: raise Refused(f"it is larger than {size(limit)} unpacked (a gzip bomb, or too large a sitemap)")
    return await asyncio.to_thread(parse_sitemap, body, most)


def parse_sitemap(body: bytes, most: int) -> tuple[str, list[tuple[str, str | None]]]:
    """(urlset or sitemapindex, its first `most` <loc>s, each with its <lastmod>): run in a thread. A sitemap that
    declares a DTD (the way to entity bombs and to reading local files) is refused unread: sitemaps never need one."""
    if re.search(rb"<!(DOCTYPE|ENTITY)", body): raise Refused("it declares entities (a DTD), which sitemaps never "
                                                              "need: an entity bomb, or an attempt to read files")
    xml, locations, root, entry = XMLPullParser(events=("start", "end")), [], None, {}
    try:
        for start in range(0, len(body), 1024 * 1024):
            xml.feed(body[start:start + 1024 * 1024])
            for event, element in xml.read_events():
                tag = element.tag.rsplit("}", 1)[-1]
                if event == "start":
                    root = root or tag
                elif tag in ("loc", "lastmod") and element.text:
                    entry[tag] = element.text.strip()
                elif tag in ("url", "sitemap"):
                    if "loc" in entry and len(locations) < most: locations.append((entry["loc"], entry.get("lastmod")))
                    entry = {}
                    element.clear()
        xml.close()
    except ParseError as error:
        raise Refused(f"it is not well-formed XML ({error})") from None
    return root or "urlset", locations


def lastmod_problem(text: str | None, now: datetime | None = None) -> str | None:
    "What is wrong with a sitemap's <lastmod>: not a W3C date, or a date in the future; None when nothing is."
    if not text: return None
    if not W3C_DATE.fullmatch(text): return "not a W3C date"
    parts = text.split("-", 2)
    try:  # a year or a month alone is its first day
        date = datetime.fromisoformat(text.replace("Z", "+00:00")) if len(parts) == 3 else \
            datetime(int(parts[0]), int(parts[1]) if len(parts) == 2 else 1, 1)
    except ValueError:
        return "not a W3C date"
    now = now or datetime.now(timezone.utc)
    if date.tzinfo is None: date = date.replace(tzinfo=timezone.utc)
    return "in the future" if date > now + SLACK else None


IN_SITEMAP = "in_sitemap = 1 AND "
FINDINGS = [
    Finding("sitemap_broken", "In the sitemap, broken",
            f"{IN_SITEMAP}state = 'done' AND (status >= 400 OR status IS NULL)", "error",
            "A sitemap should list pages that answer 200: drop these or fix them."),
    Finding("sitemap_redirect", "In the sitemap, redirected", IN_SITEMAP + REDIRECTS, "warning",
            "A sitemap should list the final URLs: list where these redirect instead."),
    Finding("sitemap_not_indexable", "In the sitemap, not indexable", f"{IN_SITEMAP}{HTML_200} AND indexable = 0",
            "warning", "noindex or canonicalised elsewhere: a sitemap should list only the pages to index."),
    Finding("sitemap_blocked", "In the sitemap, blocked by robots.txt", f"{IN_SITEMAP}state = 'blocked'", "warning",
            "Search engines may not fetch them: unblock them or drop them from the sitemap."),
    Finding("not_in_sitemap", "Indexable, in no sitemap", f"in_sitemap = 0 AND {HTML_200} AND indexable = 1 AND "
            f"{READ_SITEMAPS}", "notice", "Only found through links: add them to a sitemap."),
    Finding("sitemap_lastmod", "In the sitemap, a wrong lastmod", f"lastmod_problem IS NOT NULL AND {CRAWLED}",
            "notice", "A lastmod in the future or no date at all: search engines stop trusting the sitemap's dates."),
]
