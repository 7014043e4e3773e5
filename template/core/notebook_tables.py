"""A DataFrame a notebook app's step shows is one of the app's explorable tables (explore.py): its columns sort, a
search finds rows, a pager moves through them, a narrow box shows them as cards, and the view downloads as a CSV.

The step's kernel shows every DataFrame as its data too: pandas' table schema, the `application/vnd.dataresource+json`
bundle pandas' `display.html.table_schema` makes, here without its cut at 60 rows and registered by the frame's type
name, so that a step without pandas never imports it (see IN_KERNEL). The run keeps the frame's first rows, at most
CELLS values, with the step's other outputs, so a table survives a restart as they do, and one cut short says so.
The server sorts, searches and pages the kept rows: the page gets explore.PAGE_SIZE of them, never the frame. Values
are data: drawn as escaped text, and written to the CSV as safe cells (exports.py).
"""

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from fasthtml.common import *

from core import explore
from core.explore import Column, View
from core.exports import write_csv
from core.workflows import drawn

MIME = "application/vnd.dataresource+json"
CELLS = 100_000  # values of a frame a run keeps (rows times columns): its first rows, as many as fit
ORDER = "order"  # the sort of the rows as the frame has them

# Run in the step's kernel before the notebook's cells (after the inputs). A formatter for a type given by name is
# called only for that type's objects, so pandas is imported by the notebook or not at all. A frame pandas cannot
# write so (columns of several levels, say) gives None, and its HTML shows instead, as in JupyterLab.
IN_KERNEL = f'''
def _explorable_tables():
    import json
    from IPython import get_ipython
    from IPython.core.formatters import BaseFormatter
    from traitlets import ObjectName
    class TableSchema(BaseFormatter):
        print_method, _return_type = ObjectName("_repr_data_resource_"), (dict,)
    def data(frame):
        index = frame.index
        plain = type(index).__name__ == "RangeIndex" and index.start == 0 and index.step == 1
        try: table = frame.head(max(1, {CELLS} // max(1, frame.shape[1]))).to_json(orient="table", index=not plain)
        except Exception: return None
        return json.loads(table), {{"rows": len(frame)}}
    shell = get_ipython().display_formatter
    shell.formatters[{MIME!r}] = formatter = TableSchema(parent=shell)
    for module in ("pandas", "pandas.core.frame"): formatter.for_type_by_name(module, "DataFrame", data)
_explorable_tables()
del _explorable_tables
'''


def text(value, kind: str = "") -> str:
    "A value as the table shows it and its search finds it: None as nothing, a date without a time of 00:00."
    if value is None: return ""
    if kind == "datetime" and isinstance(value, str):
        return value.removesuffix("T00:00:00.000").removesuffix(".000").replace("T", " ")
    if isinstance(value, str | int | float): return str(value)
    return json.dumps(value, ensure_ascii=False)  # a list or a dict in a column of objects


@dataclass
class Frame:
    "A table a step showed: its columns (explore's), the rows the run kept, each a list, and the rows it had in all."
    columns: list[Column]
    kinds: list[str]  # each column's type in the table schema: integer, number, boolean, datetime, string...
    rows: list[list]
    total: int

    @classmethod
    def of(cls, output: dict) -> "Frame":
        table, fields = output["data"][MIME], output["data"][MIME]["schema"]["fields"]
        kinds = [field.get("type", "any") for field in fields]
        columns = [Column(f"c{i}", str(field["name"]), cell=lambda row, i=i, kind=kind: text(row[i], kind),
                          numeric=kind in ("integer", "number")) for i, (field, kind) in enumerate(zip(fields, kinds))]
        rows = [[record.get(str(field["name"])) for field in fields] for record in table["data"]]
        return cls(columns, kinds, rows, output.get("metadata", {}).get(MIME, {}).get("rows", len(rows)))

    def view(self, query) -> View: return View.read(query, self.columns, [], default_sort=ORDER)

    def matching(self, view: View) -> list[list]:
        "The rows the view's search finds, in its order; those without a value in the sorted column last."
        search = view.search.casefold()
        found = [row for row in self.rows if not search
                 or search in "\0".join(text(value, kind) for value, kind in zip(row, self.kinds)).casefold()]
        if view.sort == ORDER: return found[::-1] if view.descending else found
        i = int(view.sort[1:])
        key = (lambda row: row[i]) if self.kinds[i] in ("integer", "number", "boolean") else \
            (lambda row: text(row[i], self.kinds[i]).casefold())
        return (sorted((row for row in found if row[i] is not None), key=key, reverse=view.descending)
                + [row for row in found if row[i] is None])


def tables(value: dict) -> list[dict]:
    "The outputs of a done step that are tables, in the order it showed them."
    return [output for shown in value.get("outputs", []) for output in shown["outputs"]
            if MIME in output.get("data", {})]


def table_name(step_id: str, n: int) -> str: return f"{step_id}-table{n}"


def table_rows(frame: Frame, name: str, url: str, view: View, answer: bool = False):
    "One page of the rows the view asks for, its pager, and the link to the CSV of the view."
    found = frame.matching(view)
    view = view.fit(len(found))
    query = urlencode({k: v for k, v in view.params().items() if k != "page"})
    csv = P(A("CSV of these rows", href=f"{url}/csv?{query}", download=True, role="button", cls="outline"))
    return explore.rows(name, url, view, frame.columns, [], found[view.offset:view.offset + explore.PAGE_SIZE],
                        len(found), extra=csv, answer=answer)


def explorer(output: dict, name: str, url: str):
    "A table a step showed, to explore; url answers its views (see routes)."
    frame, view = Frame.of(output), View(ORDER)
    cut = (Small(f"The notebook's table has {frame.total:,} rows: the run keeps the first {len(frame.rows):,}, "
                 "to sort, search and download here.") if frame.total > len(frame.rows) else None)
    return Div(cut, explore.controls(name, url, view, [], "Search this table"), table_rows(frame, name, url, view))


def csv_file(frame: Frame, view: View, folder: Path) -> Path:
    "The rows the view finds, in its order, every one, as a CSV in folder: numbers stay numbers."
    rows = ([value if isinstance(value, int | float) else text(value, kind) for value, kind in zip(row, frame.kinds)]
            for row in frame.matching(view))
    return write_csv(folder / "table.csv", [column.label for column in frame.columns], rows)


def routes(plugin, flow):
    """The routes of a notebook app's tables: GET /NAME/runs/{key}/tables/{step_id}/{n} answers a view of the step's
    n-th table (the query of explore's controls), and .../csv the CSV of that view."""
    def frame_at(key: str, step_id: str, n: int) -> Frame:
        found = tables(flow.run(key).get(step_id) or {})
        if not 0 <= n < len(found): raise plugin.Refused(404, "This step showed no such table.")
        return Frame.of(found[n])

    @plugin.route("/runs/{key}/tables/{step_id}/{n}", methods="get")
    async def table_view(request, key: str, step_id: str, n: int):
        frame = frame_at(key, step_id, n)
        url = plugin.url(f"/runs/{key}/tables/{step_id}/{n}")
        return await drawn(table_rows, frame, table_name(step_id, n), url, frame.view(request.query_params),
                           answer=True)  # thousands of rows searched and sorted: in a thread

    @plugin.route("/runs/{key}/tables/{step_id}/{n}/csv", methods="get")
    async def table_csv(request, key: str, step_id: str, n: int):
        frame = frame_at(key, step_id, n)
        with tempfile.TemporaryDirectory() as folder:
            body = csv_file(frame, frame.view(request.query_params), Path(folder)).read_bytes()
        name = f"{plugin.name}-{key}-{step_id}-table{n + 1}.csv"
        return Response(body, media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'})
