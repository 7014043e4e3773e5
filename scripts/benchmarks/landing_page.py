"""The rendered server against a bare FastHTML app: process start, the landing page against the honest floor (a
page that answers every request), a long list, and many requests at once."""

import asyncio
import os
import re
import sqlite3
import statistics
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

from .measuring import (Row, Scratch, cpu_seconds, millis, pairs, per_second, ratio, ratio_row, run, seconds, server,
                        timed, wait_for_200, wait_for_port)
from .plan import Plan

BARE_APP = '''\
"""A bare FastHTML app: one page showing the rows of one SQLite table (the bench puts as many rows in it as the
fork's page shows todos). The page is an `async def`, on the event loop: a plain handler runs in a worker thread,
where its one SQLite connection fails some requests with apsw.ThreadingViolationError, a floor that errs."""
import os
import uvicorn
from fasthtml.common import *

app, rt, items, Item = fast_app(os.environ["DB"], items=dict(id=int, name=str, pk="id"))


@rt("/")
async def get(): return Titled("Items", Ul(*[Li(item.name) for item in items()]))


uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]))
'''
FLOOR = "a bare FastHTML page doing one SQLite query in an `async def` (it answers every request)"
# The bare app as the server imports fastlite: without pandas and numpy, which apswutils imports whenever they are
# installed (server.py says why). A fairer floor for the start than the bare app, which pays for them.
LEAN_APP = BARE_APP.replace("from fasthtml.common import *", "import sys\nsys.modules.update(pandas=None, numpy=None)\n"
                                                              "from fasthtml.common import *")


def add_rows(db_path: Path, table: str, rows: list[tuple], columns: str):
    "Rows put straight into a server's database, as a notebook would, while it runs."
    with sqlite3.connect(db_path, timeout=30) as db:
        db.executemany(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(rows[0]))})", rows)
    db.close()


def todo_rows(count: int, start: int = 0) -> list[tuple]:
    return [(f"Todo {n}: something to do, with a title of a usual length", n % 3 == 0, n, 1)
            for n in range(start, start + count)]


def start_to_200(command, cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    with server(command, cwd, env) as (process, url):
        wait_for_200(url + "/", process)
        return time.perf_counter() - started


def start_rows(plan: Plan, python: Path, bare: Path, fork: Path, env: dict) -> list[Row]:
    "Process start to the first 200 of the page a start opens on, each app with as many rows to show as a long list."
    bare_env = os.environ | {"DB": str(bare / "start.db")}
    bare_app = partial(start_to_200, [python, "bare_app.py"], bare, bare_env)
    lean_app = partial(start_to_200, [python, "lean_app.py"], bare, bare_env)
    rendered = partial(start_to_200, [python, "server.py"], fork, env)
    bare_app(), rendered()  # each makes its database, then it is filled as a person's would be
    add_rows(bare / "start.db", "items", [(title,) for title, *_ in todo_rows(plan.long_list)], "name")
    add_rows(next(Path(env["DATA_DIR"]).glob("*.db")), "todo", todo_rows(plan.long_list),
             "title, done, priority, profile_id")
    print("process start to first 200 ...", file=sys.stderr)
    base, subject = pairs(bare_app, rendered, plan.runs, plan.warmups)
    lean, lean_subject = pairs(lean_app, rendered, plan.runs, plan.warmups)
    firsts = [first_and_warm(python, fork, env) for _ in range(plan.warmups + plan.runs)][plan.warmups:]
    return [ratio_row(f"rendered server: process start to the first 200 of its landing page, {plan.long_list:,} "
                      "todos (the bare apps: as many rows)", "a bare FastHTML app", base, subject, seconds, "≤ 1.1x",
                      1.1),
            ratio_row("the same, against a bare app that imports fastlite without pandas and numpy, as the server does",
                      "a bare FastHTML app without pandas", lean, lean_subject, seconds, "—", None),
            ratio_row(f"the first page after a start (`GET /todos`, {plan.long_list:,} todos, asked once the port is "
                      "open), each page on a new connection", "the median of the 7 pages after it",
                      [warm for _, warm in firsts], [first for first, _ in firsts], millis, "≤ 1.5x", 1.5)]


def first_and_warm(python: Path, fork: Path, env: dict) -> tuple[float, float]:
    "A start's first page, and the median of the 7 after it: each on a new connection, as a browser's first."
    with server([python, "server.py"], fork, env) as (process, url):
        wait_for_port(url, process)
        first = timed(httpx.get, url + "/todos")
        return first, statistics.median(timed(httpx.get, url + "/todos") for _ in range(7))


def server_rows(plan: Plan, fork: Path, env: dict, fresh: Scratch) -> list[Row]:
    python = fork / ".venv/bin/python"
    bare = fresh("bare-app")
    bare.mkdir()
    (bare / "bare_app.py").write_text(BARE_APP)
    (bare / "lean_app.py").write_text(LEAN_APP)
    rows = start_rows(plan, python, bare, fork, env | {"DATA_DIR": str(fresh("start-data"))})
    bare_env = os.environ | {"DB": str(bare / "bare.db")}
    env = env | {"DATA_DIR": str(fresh("pages-data"))}
    with server([python, "bare_app.py"], bare, bare_env) as (bare_process, bare_url), \
         server([python, "server.py"], fork, env) as (fork_process, fork_url):
        wait_for_200(bare_url + "/", bare_process)
        wait_for_200(fork_url + "/", fork_process)
        landing = urllib.request.urlopen(fork_url + "/").url  # where / leads: the app used last
        page = urllib.parse.urlsplit(landing).path
        with httpx.Client(base_url=fork_url) as app:  # ten todos, added the way a person does (the chat notes them)
            for n in range(10): app.post("/todos", data={"title": todo_rows(1, n)[0][0]}).raise_for_status()
        add_rows(bare / "bare.db", "items", [(title,) for title, *_ in todo_rows(10)], "name")
        bare_page, fork_page = (bare_url + "/", bare_process.pid), (landing, fork_process.pid)
        rows.append(rate_row(plan, f"**the landing page**, `GET {page}` with 10 todos: requests per second and "
                                   "server CPU per request, keep-alive", bare_page, fork_page,
                             "≥ 0.9x requests, ≤ 1.1x CPU", (0.9, 1.1)))
        rows.append(rate_row(plan, "`GET /` (a redirect to the landing page), requests per second and server CPU per "
                                   "request, keep-alive", bare_page, (fork_url + "/", fork_process.pid), "—", None))
        more = plan.long_list - 10
        add_rows(next(Path(env["DATA_DIR"]).glob("*.db")), "todo", todo_rows(more, 10), "title, done, priority, profile_id")
        add_rows(bare / "bare.db", "items", [(title,) for title, *_ in todo_rows(more, 10)], "name")
        rows.append(long_page_row(plan, bare_url + "/", landing))
        rows.append(asyncio.run(many_at_once(plan, fork_url, page)))
    return rows


def long_page_row(plan: Plan, bare_url: str, url: str) -> Row:
    "The page with a long list, asked for again and again: its first answer after a start, then the median."
    print(f"{url} with {plan.long_list:,} todos ...", file=sys.stderr)
    with httpx.Client() as client:
        first = timed(client.get, url)  # the new todos are drawn for the first time
        base, subject = pairs(lambda: timed(client.get, bare_url), lambda: timed(client.get, url),
                              plan.runs * 5, plan.warmups * 5)
    return Row(f"`GET {urllib.parse.urlsplit(url).path}` with {plan.long_list:,} todos: time to the whole page, p50",
               "a bare FastHTML page of as many rows", millis(statistics.median(base)),
               f"{millis(statistics.median(subject))} (the first, its {plan.long_list - 10:,} todos put into the "
               f"database behind the server's back: {millis(first)})", f"{ratio(base, subject):.2f}x", "≤ 30 ms",
               statistics.median(subject) <= 0.030)


async def answer_time(host: str, port: int, path: str) -> float | None:
    "Seconds from connecting to the end of the answer (a new connection, as each browser tab's first), None if none."
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        answer = await reader.read()
        writer.close()
    except OSError:
        return None
    return time.monotonic() - started if answer.startswith(b"HTTP/1.1 200") else None


async def many_at_once(plan: Plan, url: str, path: str) -> Row:
    "plan.at_once requests for the long page sent together; every one must be answered, the slowest within 10 s."
    print(f"{plan.at_once} requests at once ...", file=sys.stderr)
    address = urllib.parse.urlsplit(url)
    times = await asyncio.wait_for(asyncio.gather(*[answer_time(address.hostname, address.port, path)
                                                    for _ in range(plan.at_once)]), 120)
    answered = [t for t in times if t is not None]
    outcome = (f"{len(answered)}/{plan.at_once} answered, median {seconds(statistics.median(answered))}, "
               f"slowest {seconds(max(answered))}" if answered else f"0/{plan.at_once} answered")
    return Row(f"{plan.at_once} `GET {path}` at once ({plan.long_list:,} todos)", "—", "—", outcome, "—",
               "all answered, none after 10 s", len(answered) == plan.at_once and max(answered) <= 10)


@dataclass
class Load:
    rate: float  # requests per second
    errors: int  # answers 4xx or 5xx
    cpu: float  # the server's CPU seconds per request


def served_load(url: str, pid: int, seconds: int) -> Load:
    "wrk with keep-alive (one thread, 10 connections) against the server whose process is pid."
    cpu = cpu_seconds(pid)
    out = run(["wrk", "-t1", "-c10", f"-d{seconds}s", url]).stdout
    failed = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    answered = int(re.search(r"(\d+) requests in", out)[1])
    return Load(float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), int(failed[1]) if failed else 0,
                (cpu_seconds(pid) - cpu) / max(answered, 1))


def rate_row(plan: Plan, figure: str, bare: tuple[str, int], subject: tuple[str, int], target: str,
             limits: tuple[float, float] | None) -> Row:
    """Requests per second and the server's CPU per request, each (url, server pid); limits: the least ratio of
    requests and the most of CPU. A baseline that answered with errors is no floor: no ratio is given against it.
    A subject with errors misses its target."""
    print(f"{figure} ...", file=sys.stderr)
    base, measured = pairs(lambda: served_load(*bare, plan.wrk_seconds), lambda: served_load(*subject, plan.wrk_seconds),
                           plan.runs, plan.warmups)
    if any(load.errors for load in base):
        return Row(figure, FLOOR, load_text(base), load_text(measured), "none: the baseline answered with errors",
                   target, None if limits is None else False)
    rates = ratio([load.rate for load in base], [load.rate for load in measured])
    cpu = ratio([load.cpu for load in base], [load.cpu for load in measured])
    met = None if limits is None else rates >= limits[0] and cpu <= limits[1] and not any(l.errors for l in measured)
    return Row(figure, FLOOR, load_text(base), load_text(measured), f"{rates:.2f}x requests, {cpu:.2f}x CPU", target,
               met)


def load_text(loads: list[Load]) -> str:
    "The median rate and CPU per request, and how many answers of all the runs were errors (4xx or 5xx)."
    rate, cpu = statistics.median(l.rate for l in loads), statistics.median(l.cpu for l in loads)
    errors = sum(load.errors for load in loads)
    return f"{per_second(rate)}, CPU {cpu * 1e6:.0f} µs per request" + (f", {errors} error answers" if errors else "")
