"""A crawl's pages in the explorer (explore.py): the table's columns and cells, its filters, and the rows of a view,
read from the crawl's file. The cells are written as markup: a page of the table is hundreds of them (see
explore.table_row). A finished crawl's views read its kept findings and sort through its indexes (crawl_file.py)."""

from html import escape

from fasthtml.common import NotStr

from core.explore import PAGE_SIZE, Column, Filter, View, address
from core.seo import extraction
from core.seo.crawl_file import FEW, FINDINGS, CrawlFile
from core.seo.findings import CRAWLED

SHOW = {"2xx": "status BETWEEN 200 AND 299", "3xx": "status BETWEEN 300 AND 399", "4xx": "status BETWEEN 400 AND 499",
        "5xx": "status >= 500", "failed": "state = 'done' AND status IS NULL", "blocked": "state = 'blocked'",
        "pending": "state IN ('queued', 'sitemap')", "beyond": "state = 'beyond'"}
SHOW_LABELS = {"2xx": "2xx", "3xx": "3xx redirects", "4xx": "4xx", "5xx": "5xx", "failed": "no answer",
               "blocked": "blocked by robots.txt", "pending": "not crawled yet", "beyond": "deeper than the limit"}
LINKED_FROM = "(SELECT group_concat(url, ' ') FROM (SELECT s.url FROM link l JOIN page s ON s.id = l.source " \
              "WHERE l.target = page.id ORDER BY s.depth, s.id LIMIT 3)) AS linked_from"


def mark(text, cls: str, title: str | None = None) -> NotStr:
    hint = f' title="{escape(title)}"' if title else ""
    return NotStr(f'<mark class="{cls}"{hint}>{escape(str(text))}</mark>')


def status_cell(row):
    if row["state"] == "blocked": return mark("blocked", "blocked")
    if row["state"] == "refused": return mark("not read", "failed", row["refused"])
    if row["state"] != "done": return mark("not crawled", "pending")
    if row["status"] is None: return mark("failed", "failed", row["error"])
    return mark(row["status"], f"s{row['status'] // 100}")


def within(url: str, origin: str) -> str:
    "A URL of the site as its path (every row shares the host), any other URL whole."
    return (url.removeprefix(origin) or "/") if url.startswith(origin + "/") or url == origin else url


def small(*parts) -> str: return f"<small>{''.join(map(str, parts))}</small>"


def url_cell(row):
    origin, url = row["origin"], escape(row["url"])
    link = (f'<a href="#" hx-get="{row["detail"]}" hx-target="closest tr" hx-swap="afterend" title="{url}" '
            f'aria-label="{url}: everything about this page">{address(within(row["url"], origin))}</a>')
    moved = small("→ ", address(within(row["redirect_to"], origin))) if row["redirect_to"] else ""
    linked = small("Linked from ", " ".join(str(address(within(source, origin)))
                                            for source in row["linked_from"].split(" "))) if row["linked_from"] else ""
    notes = "".join(small(escape(row[column])) for column in ("error", "refused") if row[column])
    return NotStr(link + moved + linked + notes)


def number(column: str):
    return lambda row: None if row[column] is None else f"{row[column]:,}"


COLUMNS = [
    Column("url", "URL", url_cell, cls="url"),
    Column("status", "Status", status_cell),
    Column("title", "Title", lambda row: row["title"]),
    Column("depth", "Depth", number("depth"), numeric=True),
    Column("inlinks", "In-links", number("inlinks"), numeric=True),
    Column("outlinks", "Out-links", number("outlinks"), numeric=True),
    Column("words", "Words", number("words"), numeric=True),
    Column("seconds", "Time", lambda row: None if row["seconds"] is None else f"{row['seconds']:.2f} s",
           numeric=True),
]


def table_columns(fields: dict[str, str]) -> list[Column]:
    "The explorer's columns: the crawl's own, then the fields of its custom extraction."
    return COLUMNS + [Column(extraction.column(name), name, lambda row, name=name: row[extraction.column(name)])
                      for name in fields]


FILTERS = [Filter("show", "Every crawled page", SHOW_LABELS),
           Filter("finding", "Any finding", {finding.id: finding.label for finding in FINDINGS})]


def condition(crawl: CrawlFile, view: View) -> tuple[str, list]:
    "The SQL condition (and its arguments) of the pages a view shows."
    where, args = [SHOW.get(view.filters.get("show"), CRAWLED)], []
    if finding := view.filters.get("finding"):
        found, args = crawl.found(finding)
        where.append(found)
    if view.search:
        pattern = "%" + view.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(url LIKE ? ESCAPE '\\' OR title LIKE ? ESCAPE '\\')")
        args += [pattern, pattern]
    return " AND ".join(f"({part})" for part in where), args


def matching(crawl: CrawlFile, view: View, where: str, args: list) -> tuple[int, str, list]:
    """How many pages a view shows, and the condition to read them by. A finding alone has its count kept (counting
    them took a scan of every page). A search reads the title's index (it holds the URLs too): when it matches few
    pages, their ids are the condition, so reading a page of them does not test every page again."""
    if set(view.filters) == {"finding"} and not view.search and (kept := crawl.kept_findings()):
        return kept[view.filters["finding"]], where, args
    if view.search:
        ids = [row[0] for row in crawl.db.execute(f"SELECT id FROM page WHERE {where} LIMIT {FEW + 1}", args)]
        if len(ids) <= FEW: return len(ids), f"id IN ({', '.join('?' * len(ids))})", ids
    return crawl.db.execute(f"SELECT count(*) FROM page WHERE {where}", args).fetchone()[0], where, args


def order(view: View) -> str:
    "Ties in the crawl's order, reversed with the rest: the sort's index gives the rows in this order, no sorting."
    way = "DESC" if view.descending else "ASC"
    return f"{view.sort} {way} NULLS LAST, id {way}" if view.sort != "id" else f"id {way}"


def pages(crawl: CrawlFile, url: str, view: View) -> tuple[list[dict], int, View]:
    """One page of the rows the view asks for, how many match in all, and the view fitted to them; url is the
    table's, each page's details are under it."""
    total, where, args = matching(crawl, view, *condition(crawl, view))
    if not total: return [], 0, view.fit(0)
    view = view.fit(total)
    linked = LINKED_FROM if view.filters.get("finding") in ("broken", "redirect", "redirect_chain") else \
        "NULL AS linked_from"
    fields = "".join(f", {column}" for column in extraction.columns(crawl.settings.extract))
    found = crawl.db.execute(f"SELECT id, url, state, status, error, refused, redirect_to, title, depth, inlinks, "
                             f"outlinks, words, seconds, {linked}{fields} FROM page WHERE {where} ORDER BY {order(view)} "
                             f"LIMIT {PAGE_SIZE} OFFSET {view.offset}", args).fetchall()
    origin = f"{crawl.site.scheme}://{crawl.site.netloc.decode('ascii')}"
    return [dict(row) | {"detail": f"{url}/{row['id']}", "origin": origin}
            for row in found], total, view
