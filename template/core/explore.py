"""A results table people explore: sorted, filtered and paged on the server, redrawn by htmx.

Template-owned. A plugin gives the columns and the filters, reads the table's View from the request, fetches the
rows that view asks for (from SQLite, or a list), and draws `controls(...)` once and `rows(...)` for every answer:

    view = View.read(request.query_params, COLUMNS, FILTERS, default_sort="url")
    found, total = my_rows(view)  # the rows of view.page, and how many match in all
    return explore.rows("pages", url, view, COLUMNS, FILTERS, found, total)

The controls (a search box and a select per filter) are a form that keeps the sort and the page in hidden fields;
each answer swaps the rows in and updates those fields out of band, so typing in the search box is never
interrupted. Column headers sort (a second click reverses), the pager moves, a filter goes back to the first page.
"""

import json
import re
from collections.abc import Callable
from html import escape
from dataclasses import dataclass, field, replace

from fasthtml.common import *

PAGE_SIZE = 50


@dataclass
class Column:
    id: str  # the sort key, and the field of a row the default cell shows
    label: str
    cell: Callable | None = None  # row -> what the cell shows (default: the row's field)
    sortable: bool = True
    numeric: bool = False  # right-aligned; sorted largest first on the first click
    cls: str | None = None  # of its cells


@dataclass
class Filter:
    id: str  # the query parameter
    label: str  # the select's label, and its "all" choice
    choices: dict[str, str]  # value -> label


@dataclass
class View:
    "What the person asked to see: a search, the filters' values, the sort and the page."
    sort: str
    descending: bool = False
    page: int = 1
    search: str = ""
    filters: dict = field(default_factory=dict)  # filter id -> the chosen value (only those chosen)

    @classmethod
    def read(cls, query, columns: list[Column], filters: list[Filter], default_sort: str, descending=False):
        """The view a request's query parameters ask for; anything unknown falls back to the defaults (the default
        sort may be an order no column shows, such as the order the rows came in)."""
        sortable = {column.id for column in columns if column.sortable} | {default_sort}
        sort = query.get("sort") if query.get("sort") in sortable else default_sort
        try: page = max(1, int(query.get("page") or 1))
        except ValueError: page = 1
        chosen = {f.id: query[f.id] for f in filters if query.get(f.id) in f.choices}
        descending = query.get("desc") == "1" if "desc" in query else descending
        return cls(sort, descending, page, (query.get("q") or "").strip()[:200], chosen)

    @property
    def offset(self) -> int: return (self.page - 1) * PAGE_SIZE

    def fit(self, total: int) -> "View":
        "The view on a page that exists, for total matching rows."
        return replace(self, page=min(self.page, max(1, -(-total // PAGE_SIZE))))

    def params(self, **changes) -> dict:
        "The query parameters of this view, with changes: for links that keep everything else."
        view = replace(self, **changes)
        return ({"sort": view.sort, "desc": int(view.descending), "page": view.page, "q": view.search}
                | view.filters)


def address(url: str):
    """A URL that may wrap after its slashes, its ? and its &s (a <wbr> break opportunity, no added character), and
    inside a word only where a piece is wider than its column can be. Written as markup directly: a table has hundreds
    of them, and a component per piece costs far more to draw."""
    return NotStr('<span class="address">' + BREAKS.sub(r"\1<wbr>", escape(url, quote=False)) + "</span>")


BREAKS = re.compile(r"(/|\?|&amp;)")  # where an escaped URL breaks naturally


def state(name: str, view: View, **attrs):
    "The hidden fields that carry the sort and the page with the form."
    return (Input(type="hidden", name="sort", value=view.sort, id=f"{name}-sort", **attrs),
            Input(type="hidden", name="desc", value=int(view.descending), id=f"{name}-desc", **attrs),
            Input(type="hidden", name="page", value=view.page, id=f"{name}-page", **attrs))


def filter_select(name: str, view: View, choice: Filter, **attrs):
    return Select(Option(choice.label, value=""),
                  *[Option(label, value=value, selected=view.filters.get(choice.id) == value)
                    for value, label in choice.choices.items()],
                  name=choice.id, aria_label=choice.label, id=f"{name}-{choice.id}", **attrs)


def controls(name: str, url: str, view: View, filters: list[Filter], placeholder: str = "Search"):
    "The search box and the filters: they redraw the rows as the person types or chooses, from the first page."
    return Form(Input(type="search", name="q", value=view.search, placeholder=placeholder, aria_label=placeholder),
                *[filter_select(name, view, choice) for choice in filters],
                *state(name, view),
                hx_get=url, hx_target=f"#{name}-rows", hx_swap="outerHTML", hx_vals='{"page": 1}',
                hx_trigger="input delay:300ms, submit", id=f"{name}-view",  # not change: it comes on blur too
                cls="explore-controls", role="search")


def header(name: str, url: str, view: View, column: Column):
    if not column.sortable: return Th(column.label, scope="col")
    sorted_here = view.sort == column.id
    descending = not view.descending if sorted_here else column.numeric
    arrow = ("▼" if view.descending else "▲") if sorted_here else ""
    return Th(Button(column.label, Span(arrow, aria_hidden="true"), type="button", cls="sort",
                     hx_get=url, hx_include=f"#{name}-view", hx_target=f"#{name}-rows", hx_swap="outerHTML",
                     hx_vals=json.dumps({"sort": column.id, "desc": int(descending), "page": 1})),
              scope="col", cls="numeric" if column.numeric else None,
              aria_sort=("descending" if view.descending else "ascending") if sorted_here else None)


def markup(shown) -> str:
    "What a cell shows, as HTML: text escaped, components drawn, tuples joined, None as nothing."
    if shown is None: return ""
    if isinstance(shown, tuple | list): return "".join(map(markup, shown))
    if isinstance(shown, str): return escape(shown)
    return to_xml(shown) if isinstance(shown, FT) else str(shown)  # NotStr is markup already


def table_row(columns: list[Column], row) -> NotStr:
    """One row of the table, written as markup: a page of rows is hundreds of cells, and drawing each as a
    component costs far more than the query that found them."""
    cells = []
    for column in columns:
        shown = column.cell(row) if column.cell else (row.get(column.id) if isinstance(row, dict)
                                                      else getattr(row, column.id))
        cls = "numeric" if column.numeric else column.cls
        attribute = f' class="{cls}"' if cls else ""
        cells.append(f'<td{attribute} data-label="{escape(column.label)}">{markup(shown)}</td>')
    return NotStr(f"<tr>{''.join(cells)}</tr>")


def pager(name: str, url: str, view: View, total: int):
    last = max(1, -(-total // PAGE_SIZE))
    def go(page: int, label: str):
        return Button(label, type="button", cls="outline secondary",
                      disabled=not 1 <= page <= last or page == view.page, hx_get=url, hx_include=f"#{name}-view", hx_target=f"#{name}-rows", hx_swap="outerHTML",
                      hx_vals=json.dumps({"page": page}))
    shown = (f"{view.offset + 1:,}–{min(view.offset + PAGE_SIZE, total):,} of {total:,}" if total
             else "No rows match.")
    return Nav(go(1, "« First"), go(view.page - 1, "‹ Previous"), Small(shown, aria_live="polite"),
               go(view.page + 1, "Next ›"), go(last, "Last »"), cls="pager", aria_label=f"Pages of the {name} table")


def rows(name: str, url: str, view: View, columns: list[Column], filters: list[Filter], found, total: int,
         extra=None, answer: bool = True, **attrs):
    """The table of the rows found (one page of them, total in all) and its pager; as the answer to a request
    (answer=True) also the form's fields, updated out of band. extra goes under the pager (download links for this
    view, say); attrs go on the rows' element (hx_trigger="every 2s" with hx_get and hx_include keeps it live
    while the rows are still coming)."""
    follow = [*state(name, view, hx_swap_oob="true"),
              *[filter_select(name, view, choice, hx_swap_oob="true") for choice in filters]] if answer else []
    # The table scrolls in a box of its own, under its headers: a keyboard reaches it (tabindex) to scroll it too.
    return Div(Div(Table(Thead(Tr(*[header(name, url, view, column) for column in columns])),
                         Tbody(*[table_row(columns, row) for row in found]),
                         cls="striped explore"),
                   cls="table-box", tabindex="0", role="region", aria_label="Results"),
               pager(name, url, view, total), extra, *follow, id=f"{name}-rows", **attrs)


CSS = """
.explore-controls { display: flex; flex-wrap: wrap; gap: .5rem; margin-bottom: .75rem; }
.explore-controls input[type=search] { flex: 2 1 18rem; margin: 0; }  /* the selects wrap before it cuts its hint */
.explore-controls select { flex: 1 1 13rem; width: auto; min-width: 0; max-width: 100%; margin: 0; }
table.explore { font-size: .8rem; }
table.explore :is(th, td) { padding: .35rem .45rem; }
table.explore td { vertical-align: top; overflow-wrap: break-word; hyphens: none; }
table.explore td.url { min-width: 7rem; max-width: 20rem; }
table.explore td.numeric, table.explore th.numeric { width: 1%; }
/* break-word, not anywhere: a column is never made narrower than a URL's widest piece between its breaks */
table.explore td.url a, table.explore td.url span.address { word-break: normal; overflow-wrap: break-word; }
.table-box { overflow: auto; max-height: 75vh; container-type: inline-size; }
table.explore thead th { position: sticky; top: 0; z-index: 1; background: var(--pico-card-background-color); }
table.explore .numeric { text-align: right; white-space: nowrap; }
table.explore th { white-space: nowrap; }
table.explore th button.sort { all: unset; cursor: pointer; font-weight: 600; }
table.explore th button.sort:focus-visible { outline: 2px solid var(--accent); }
table.explore th button.sort span { margin-left: .25rem; font-size: .7rem; }
/* In a narrow box (a phone, a tablet with the chat under the app) each row is a card: every cell on a line of its own
   under its column's name (data-label), empty ones left out, and the headers above as a row of sort buttons. The box's
   width decides, not the screen's: the same table is narrow beside the chat and wide with the chat folded. In pixels:
   Pico's rem grows with the screen, and the app's column beside the chat at 1280 px (about 700 px) keeps its table. */
@container (max-width: 640px) {
  table.explore, table.explore :is(thead, tbody) { display: block; }
  table.explore thead tr { display: flex; flex-wrap: wrap; gap: .1rem .9rem; }
  table.explore thead :is(th, th.numeric) { position: static; padding: .2rem 0; border: 0; width: auto; }
  table.explore tbody tr { display: block; padding: .4rem 0; border-bottom: 1px solid var(--pico-muted-border-color); }
  table.explore tbody :is(td, td.numeric) { display: block; position: relative; padding: .1rem .45rem .1rem 6.5rem;
                                            border: 0; width: auto; max-width: none; text-align: left; white-space: normal; }
  table.explore tbody td::before { content: attr(data-label); position: absolute; left: .45rem; width: 5.75rem;
                                   overflow: hidden; text-overflow: ellipsis; color: var(--pico-muted-color); }
  table.explore tbody td:empty { display: none; }
}
.pager { display: flex; flex-wrap: wrap; justify-content: flex-start; align-items: center; gap: .4rem;
         margin-top: .5rem; }
.pager button { width: auto; margin: 0; padding: .2rem .6rem; font-size: .8rem; }
.pager small { margin: 0 .5rem; color: var(--pico-muted-color); }
"""
