"""scripts/bench keeps working: its quick mode writes every figure of the benchmark table, each with its numbers.
The numbers themselves are not checked: they are for reading (BENCHMARKS.md), not pass or fail."""

import re
import subprocess

from template_tools import FLAVOURS, ROOT

FIGURES = [
    *(f"`copier copy`, {flavour}" for flavour in FLAVOURS),
    *(f"`copier update` with one upstream change, {flavour}" for flavour in FLAVOURS),
    "fresh fork set-up",
    "rendered server: process start to the first 200",
    "against a bare app that imports fastlite without pandas",
    "the first page after a start",
    "**the landing page**, `GET /todos` with 10 todos",
    "`GET /` (a redirect to the landing page)",
    "todos: time to the whole page, p50",
    "is pasted again and again and another is checked in the background",
    "chat: time to first token",
    "chat: added latency per token, p50",
    "chat: added latency per token, p99",
    "-token reply, tokens per second",
    "chat: added time of a read tool round",
    "site crawl against a minimal Scrapy spider,",
    "site crawl against a minimal Scrapy spider: peak memory",
]
CRAWL_FIGURES = ["site crawl of a", "site crawl: time to the first crawled page", "site crawl: server peak RSS",
                 "site crawl: pages table answer time", "site crawl: the explorer at", "site crawl: the Excel workbook"]
NUMBER = re.compile(r"\d")


def table(markdown: str) -> list[dict]:
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]


def committed_benchmarks() -> bytes | None:
    path = ROOT / "BENCHMARKS.md"
    return path.read_bytes() if path.exists() else None


def test_quick_mode_writes_every_figure_with_numbers_to_its_output(tmp_path):
    output = tmp_path / "BENCHMARKS.md"
    before = committed_benchmarks()
    result = subprocess.run([str(ROOT / "scripts/bench"), "--quick", "--output", str(output)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    written = output.read_text()
    assert re.search(r"on \d{4}-\d{2}-\d{2}", written)
    assert re.search(r"Machine: .+, \d+ cores, [\d.]+ GiB RAM, Python 3\.\d+\.\d+, .+", written)
    rows = table(written)
    for figure in FIGURES:
        row = next((row for row in rows if figure in row["figure"]), None)
        assert row is not None, f"no row for {figure!r} in:\n{written}"
        for column in ("baseline value", "subject value", "subject vs baseline"):
            assert NUMBER.search(row[column]), f"{figure!r}: no number in {column!r}: {row}"
    for figure in CRAWL_FIGURES:  # measured alone: a number in the subject's column, the rest "—"
        row = next((row for row in rows if figure in row["figure"]), None)
        assert row is not None and NUMBER.search(row["subject value"]), f"{figure!r}: {row}"
    streams = next(row for row in rows if "concurrent chat streams" in row["figure"])
    assert re.search(r"\d+/\d+ complete, \d+ errors, .*peak RSS \d+ MB", streams["subject value"]), streams
    at_once = next(row for row in rows if " at once (" in row["figure"])
    assert re.search(r"\d+/\d+ answered, median [\d.]+ s, slowest [\d.]+ s", at_once["subject value"]), at_once
    writers = next(row for row in rows if "rows into one database at once, every core busy" in row["figure"])
    for column in ("baseline value", "subject value"):
        assert re.search(r"[\d,]+ writes failed, in \d+ of \d+ runs; [\d,]+ to [\d,]+ rows", writers[column]), writers
    notebook = next(row for row in rows if "notebook-style process writing" in row["figure"])
    assert re.search(r"[\d,]+/[\d,]+ rows written; [\d,]+ requests, \d+ errors", notebook["subject value"]), notebook
    assert committed_benchmarks() == before, "the quick mode wrote over BENCHMARKS.md"
