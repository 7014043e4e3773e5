"""Crawl comparison: what changed on a site between two crawls, page by page, as counts per kind of change and a CSV.

Each crawl is its own SQLite file (crawler.py), so the earlier one is ATTACHed to the later one and compared in SQL
on the page URL: pages crawled only in the later crawl are new, only in the earlier one removed; for pages in both,
a change of status, title, canonical or indexability is one row each (a page can change in several ways at once).
"""

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from fasthtml.common import A, Button, Form, Label, Li, Option, P, Section, Select, Small, Span, Table, Tbody, Td, \
    Th, Thead, Tr, Ul

from core import exports
from core.seo.findings import CRAWLED

SHOWN = 200  # rows of each change shown on the page; the CSV has them all

# The pages of both crawls, the earlier crawl's values as old_<column>.
BOTH = f"SELECT n.*, o.status AS old_status, o.title AS old_title, o.canonical AS old_canonical, " \
       f"o.indexable AS old_indexable, o.not_indexable_why AS old_not_indexable_why " \
       f"FROM page n JOIN old.page o USING (url) WHERE n.{CRAWLED} AND o.{CRAWLED}"


@dataclass(frozen=True)
class Change:
    id: str
    label: str
    query: str  # SQL giving (url, before, after) for each page with this change


def indexability(prefix: str) -> str:
    "The page's indexability as a person reads it: yes, or no with why."
    return f"CASE WHEN {prefix}indexable IS NULL THEN NULL WHEN {prefix}indexable THEN 'yes' " \
           f"ELSE 'no: ' || coalesce({prefix}not_indexable_why, '') END"


def changed(column: str, shown=None) -> str:
    "The pages in both crawls whose column differs, with its value before and after (as shown(prefix) if given)."
    shown = shown or (lambda prefix: prefix + column)
    return f"SELECT url, {shown('old_')}, {shown('')} FROM ({BOTH}) " \
           f"WHERE old_{column} IS NOT {column} ORDER BY url"


CHANGES = [
    Change("new", "New pages (only in the later crawl)",
           f"SELECT url, NULL, status FROM page WHERE {CRAWLED} AND url NOT IN "
           f"(SELECT url FROM old.page WHERE {CRAWLED}) ORDER BY url"),
    Change("removed", "Removed pages (only in the earlier crawl)",
           f"SELECT url, status, NULL FROM old.page WHERE {CRAWLED} AND url NOT IN "
           f"(SELECT url FROM page WHERE {CRAWLED}) ORDER BY url"),
    Change("status", "Status code changed", changed("status")),
    Change("title", "Title changed", changed("title")),
    Change("canonical", "Canonical changed", changed("canonical")),
    Change("indexability", "Indexability changed", changed("indexable", indexability)),
]


def compare(earlier: Path, later: Path) -> dict[str, list[tuple]]:
    "Every change from the earlier crawl's file to the later one's: {change id: [(url, before, after), ...]}."
    db = sqlite3.connect(later)
    try:
        db.execute("ATTACH DATABASE ? AS old", [str(earlier)])
        return {change.id: db.execute(change.query).fetchall() for change in CHANGES}
    finally:
        db.close()


def write_csv(path: Path, changes: dict[str, list[tuple]]) -> Path:
    "The changes as a CSV, a row per page and change: change, url, before, after."
    return exports.write_csv(path, ["change", "url", "before", "after"],
                             ((change, *row) for change, rows in changes.items() for row in rows))


# --- As the site crawl app shows it (plugins/025_site_crawl.py)
def section(url: str, choices: dict[str, str], earlier: str = "", changes: dict[str, list[tuple]] | None = None):
    """The comparison of this crawl with an earlier one: a picker of the other crawls {run key: label}, and once one
    is chosen the count of each change, the changed pages, and a link to the CSV."""
    if not choices: return Section(P(Small("Crawl again to compare two crawls of a site.")), id="compare")
    picker = Form(Label("Compare with an earlier crawl",
                        Select(Option("Choose a crawl", value="", disabled=True, selected=not earlier),
                               *[Option(label, value=key, selected=key == earlier) for key, label in choices.items()],
                               name="earlier", required=True)),
                  Button("Compare", cls="outline"), hx_get=url, hx_target="#compare", hx_swap="outerHTML")
    if changes is None: return Section(picker, id="compare")
    counts = Ul(*[Li(Span(change.label), Span(f"{len(changes[change.id]):,}")) for change in CHANGES],
                cls="findings", aria_label="Changes")
    rows = [Tr(Td(change), Td(url), Td(str(before) if before is not None else "—"),
               Td(str(after) if after is not None else "—"))
            for change, found in changes.items() for url, before, after in found[:SHOWN]]
    return Section(picker, counts,
                   Table(Thead(Tr(Th("Change"), Th("URL"), Th("Before"), Th("After"))), Tbody(*rows))
                   if rows else P("Nothing changed."),
                   A("CSV of the changes", href=f"{url}.csv?earlier={earlier}", download=True, role="button",
                     cls="outline"),
                   id="compare")
