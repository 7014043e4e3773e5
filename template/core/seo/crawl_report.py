"""A finished crawl's report, drawn on the server: its findings with their counts, its charts (status codes, depths,
response times, as SVG bars) and everything about one page."""

import json

from fasthtml.common import *
from fasthtml.svg import G, Rect, Svg, Text

from core.seo import extraction
from core.seo.crawl_file import CrawlFile, plural

def findings_list(pages_url: str, crawl: CrawlFile):
    "Every finding with its count: a count is a button that shows its pages in the table (at pages_url)."
    def item(finding, count):
        if not count: return Li(Span(finding.label), Span("0", cls="none"), cls=finding.level)
        return Li(Span(finding.label, title=finding.why or None),
                  Button(f"{count:,}", type="button", title=f"Show these {plural(count, 'page')}",
                         hx_get=pages_url, hx_target="#pages-rows", hx_swap="outerHTML",
                         hx_include="#pages-view",
                         hx_vals=json.dumps({"finding": finding.id, "show": "", "page": 1})),
                  cls=finding.level)
    return Ul(*[item(finding, count) for finding, count in crawl.findings()], cls="findings")


def bar_chart(caption: str, bars: list[tuple[str, int]]):
    "Horizontal bars, drawn as SVG on the server: a label, a bar as long as its share of the largest, the count."
    height, top = 18, max((count for _, count in bars), default=0) or 1
    return Figure(Figcaption(caption),
                  Svg(*[G(Title(f"{label}: {plural(count, 'page')}"),
                          Text(label, x=0, y=n * height + 13),
                          Rect(x=62, y=n * height + 3, width=max(1, 150 * count / top), height=height - 6, rx=2),
                          Text(f"{count:,}", x=66 + 150 * count / top, y=n * height + 13))
                        for n, (label, count) in enumerate(bars)],
                      viewBox=f"0 0 250 {max(1, len(bars)) * height}", role="img", aria_label=caption))


DEEP = 10  # depths from here on share a bar
TIMES = [(0.1, "< 0.1 s"), (0.25, "< 0.25 s"), (0.5, "< 0.5 s"), (1, "< 1 s"), (2, "< 2 s"), (float("inf"), "≥ 2 s")]


def charts(crawl: CrawlFile):
    statuses = [(str(status) if status is not None else "failed", count)
                for status, count in crawl.counts("status", "state = 'done'")]
    blocked = crawl.db.execute("SELECT count(*) FROM page WHERE state = 'blocked'").fetchone()[0]
    depths = {}
    for depth, count in crawl.counts("depth"):  # deep ones together, so the chart stays short
        label = "sitemap" if depth is None else str(depth) if depth < DEEP else f"{DEEP}+"
        depths[label] = depths.get(label, 0) + count
    buckets = dict.fromkeys((label for _, label in TIMES), 0)
    for seconds, count in crawl.counts("seconds", "state = 'done' AND seconds IS NOT NULL"):
        buckets[next(label for limit, label in TIMES if seconds < limit)] += count
    return Div(bar_chart("Status codes", statuses + ([("blocked", blocked)] if blocked else [])),
               bar_chart("Depth (clicks from the start)", list(depths.items())),
               bar_chart("Response times", [(label, count) for label, count in buckets.items() if count]),
               cls="charts")


def page_detail(crawl: CrawlFile, row, columns: int):
    "Everything about one page, as a table row under its row."
    chain = crawl.chain(row["url"]) if row["redirect_to"] else []
    facts = [("Redirect chain", " → ".join(f"{status} {url}" for url, status in chain)),
             ("Canonical", row["canonical"]), ("Meta robots", row["meta_robots"]),
             ("X-Robots-Tag", row["x_robots_tag"]),
             ("Indexable", None if row["indexable"] is None else "yes" if row["indexable"]
              else f"no: {row['not_indexable_why']}"),
             ("Meta description", row["description"]),
             ("Lengths", f"title {row['title_chars']} characters, {row['title_px']} px; description "
              f"{row['description_chars']} characters, {row['description_px']} px" if row["html"] else None),
             ("Images", f"{row['images']}, {row['images_no_alt']} without alt" if row["images"] else None),
             ("Structured data", "; ".join(filter(None, [
                 row["jsonld_types"] and f"JSON-LD: {row['jsonld_types']}",
                 row["jsonld_errors"] and f"{plural(row['jsonld_errors'], 'JSON-LD block')} that is no JSON",
                 row["microdata_types"] and f"microdata: {row['microdata_types']}"]))),
             ("rel=prev / next", " / ".join(url or "—" for url in (row["rel_prev"], row["rel_next"]))
              if row["rel_prev"] or row["rel_next"] else None),
             ("nofollow links", row["nofollow_links"] or None),
             ("Mixed content", f"{plural(row['mixed_content'], 'resource')} over http" if row["mixed_content"]
              else None),
             ("h1", f"{row['h1_count']}: {row['h1'] or ''}" if row["h1_count"] is not None else None),
             ("hreflang", row["hreflang"]), ("hreflang problems", row["hreflang_problems"]),
             ("Near-duplicate of", row["near_duplicate_of"]
              and f"{row['near_duplicate_of']} ({row['similarity']:.0%} alike)"),
             ("Content type", row["content_type"]),
             ("Size", f"{row['size']:,} bytes{' (read up to the cap)' if row['truncated'] else ''}"
              if row["size"] is not None else None),
             ("External links", row["external_links"]), ("In the sitemap", "yes" if row["in_sitemap"] else None),
             ("Sitemap lastmod", " ".join(filter(None, [row["lastmod"], row["lastmod_problem"] and
                                                         f"({row['lastmod_problem']})"])) or None),
             ("Linked from", ", ".join(crawl.linked_from(row["url"])) or None), ("Crawled", row["crawled"]),
             ("Not read or not followed", row["refused"]),
             *[(name, row[extraction.column(name)]) for name in crawl.settings.extract]]
    return Tr(Td(Table(*[Tr(Th(label, scope="row"), Td(value)) for label, value in facts if value not in (None, "")],
                       cls="page-detail"), colspan=columns))
