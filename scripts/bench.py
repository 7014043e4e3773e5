"""What the template and its forks cost, each figure measured against a baseline on this machine.

`scripts/bench` writes BENCHMARKS.md. `scripts/bench --quick --output FILE` runs a few pairs of a smaller workload:
CI runs it only to keep the bench working, its numbers are not for reading.

Every figure is measured in pairs after a warm-up: a baseline run, then a subject run, so that both see the same
state of the machine. The table gives the median of each side and the median of the per-pair ratios (or, for
latencies, differences). Servers run in the rendered fork's environment, on free 127.0.0.1 ports, and are stopped
at the end; requests per second come from wrk (apt-get install wrk), with keep-alive.
"""

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import copier
import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from template_tools import FLAVOURS, ROOT, commit_all, git, render, snapshot  # noqa: E402


@dataclass
class Plan:
    warmups: int  # unmeasured pairs first
    runs: int  # measured pairs
    setup_warmups: int
    setup_runs: int
    wrk_seconds: int
    latency_tokens: int  # the reply the per-token latency is measured on
    long_reply: int  # the reply the tokens per second are measured on
    streams: int  # concurrent chat streams
    stream_tokens: int
    jupyter: bool  # the fork has JupyterLab (the default); without it the set-up installs far less
    crawl_pages: int  # the size of the local site crawled
    writer_runs: int  # pairs of the concurrent-writers figure
    writers: int  # processes writing at once
    writer_rows: int  # rows each writes
    long_list: int  # todos of the long list
    at_once: int  # concurrent requests
    urls: int  # the URL list submitted while the page is timed (the URL checker's most)


FULL = Plan(warmups=1, runs=7, setup_warmups=1, setup_runs=3, wrk_seconds=5, latency_tokens=200, long_reply=2000,
            streams=50, stream_tokens=1000, jupyter=True, crawl_pages=10_000, writer_runs=20, writers=4,
            writer_rows=2000, long_list=1000, at_once=500, urls=5000)
QUICK = Plan(warmups=0, runs=2, setup_warmups=0, setup_runs=1, wrk_seconds=1, latency_tokens=30, long_reply=300,
             streams=10, stream_tokens=100, jupyter=False, crawl_pages=300, writer_runs=1, writers=2, writer_rows=200,
             long_list=100, at_once=50, urls=300)

OLD, NEW = "v1.0.0", "v1.0.1"  # the template releases a fork is updated between
TOKEN_PACE = 0.01  # seconds between tokens where the pace matters: 100 tokens/s, a fast local model
MODEL = "llama3.2"
STREAM_PACE = 0.001  # seconds between tokens of the concurrent streams: 1,000 tokens/s, a hosted or GPU server
BACKENDS = {  # the chat's LLM_BACKEND -> the environment that points it at the stamped fake (base URL appended)
    "ollama": lambda url: {"LLM_BACKEND": "ollama", "OLLAMA_HOST": url},
    "openai": lambda url: {"LLM_BACKEND": "openai", "OPENAI_BASE_URL": f"{url}/v1", "OPENAI_MODEL": f"{MODEL}:latest"},
}

# The baseline template: copier.yml, one file, and the answers file that `copier update` needs.
ONE_FILE_TEMPLATE = {
    "copier.yml": "project_name:\n  type: str\n  default: Demo\n",
    "README.md.jinja": "# {{ project_name }}\n",
    "{{_copier_conf.answers_file}}.jinja": "{{ _copier_answers | to_nice_yaml }}",
}

BARE_APP = '''\
"""A bare FastHTML app: one page showing the rows of one SQLite table (the bench puts as many rows in it as the
fork's page shows todos)."""
import os
import uvicorn
from fasthtml.common import *

app, rt, items, Item = fast_app(os.environ["DB"], items=dict(id=int, name=str, pk="id"))


@rt("/")
def get(): return Titled("Items", Ul(*[Li(item.name) for item in items()]))


uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]))
'''

STAMPED_LLM = '''\
"""The fork's fake Ollama, replying to a message ending in "COUNT PACE" with COUNT tokens sent PACE seconds apart.
Each token is the time.monotonic() it was sent at (a clock every process shares), so a reader can tell how long it
took to arrive. A message starting with TOOL, offered tools, is first answered with a call of list_todos."""
import asyncio
import os
import sys
import time

import uvicorn

sys.path.insert(0, "tests")
from fake_ollama import FakeLLM


class StampedLLM(FakeLLM):
    def reply(self, messages):
        count, pace = next(m["content"] for m in reversed(messages) if m["role"] == "user").split()[-2:]
        return [float(pace)] * int(count)

    def answer(self, body):
        last = body["messages"][-1]
        if body.get("tools") and last["role"] == "user" and last["content"].startswith("TOOL"):
            self.calls = [[("list_todos", {})]]
        return super().answer(body)

    async def paced(self, paces, chunk, error, end):
        for pace in paces:
            if isinstance(pace, dict):  # a tool call
                yield chunk(pace)
                continue
            await asyncio.sleep(pace)
            yield chunk(f"{time.monotonic():.6f} ")
        yield end()


uvicorn.run(StampedLLM().app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
'''
STAMP = re.compile(r"(\d+\.\d{6})(?!\d)")  # rendered as Markdown, the last loses its space
COPY_SOURCE = re.compile(r'data-markdown="[^"]*"')  # a finished reply's Markdown, kept for its Copy button

BIG_SITE = '''\
"""The fork's generated test site (tests/local_site.py, BigSite) of PAGES pages, for the crawl figures."""
import os
import sys

import uvicorn

sys.path.insert(0, "tests")
from local_site import BigSite

uvicorn.run(BigSite(int(os.environ["PAGES"])).app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
'''
CRAWLED = re.compile(r"([\d,]+) pages crawled")
LOCAL_SITE = '''\
"""A web site on 127.0.0.1 for the URL checker to check: /page/N answers at once with a page titled N."""
import os

import uvicorn
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route


def page(request): return HTMLResponse(f"<title>Page {request.path_params['n']}</title><p>Checked.</p>")


app = Starlette(routes=[Route("/page/{n}", page)])
uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
'''

# A process of the fork writing rows through its database layer, as a notebook or a script does. With
# `sqlite-timeout` it prepares its connection as the fork did before database.py: SQLite's own 5 s busy timeout.
WRITER = '''\
import sys

import apsw

import config
from database import open_database

if sys.argv[3] == "sqlite-timeout":
    def before(connection):
        connection.set_busy_timeout(5000)
        connection.pragma("journal_mode", "wal")
    apsw.connection_hooks[:] = [before]
todos = open_database(config.DB_PATH).t.todo
print("ready", flush=True)
sys.stdin.readline()
failed = 0
for n in range(int(sys.argv[2])):
    try: todos.insert(title=f"{sys.argv[1]}-{n}", done=0, priority=n, profile_id=1)
    except apsw.BusyError: failed += 1
print(failed, flush=True)
'''


# --- Measuring in pairs

def pairs(baseline, subject, runs: int, warmups: int) -> tuple[list, list]:
    "Calls baseline() then subject(), warmups times unmeasured, then runs times; returns both lists of results."
    for _ in range(warmups): baseline(), subject()
    results = [(baseline(), subject()) for _ in range(runs)]
    return [b for b, _ in results], [s for _, s in results]


def timed(action, *args, **kwargs) -> float:
    started = time.perf_counter()
    action(*args, **kwargs)
    return time.perf_counter() - started


@dataclass
class Row:
    figure: str
    baseline: str
    baseline_value: str
    subject_value: str
    compared: str  # the median of the per-pair ratios or differences
    target: str
    met: bool | None  # None: no target to meet


def ratio(base: list, subject: list) -> float:
    "The median of the per-pair ratios, subject / baseline."
    return statistics.median(s / b for b, s in zip(base, subject))


def ratio_row(figure, baseline, base, subject, unit, target, limit, higher_is_better=False) -> Row:
    median = ratio(base, subject)
    return Row(figure, baseline, unit(statistics.median(base)), unit(statistics.median(subject)), f"{median:.2f}x",
               target, median >= limit if higher_is_better else median <= limit)


def seconds(value): return f"{value:.2f} s"
def millis(value): return f"{value * 1000:.1f} ms"
def per_second(value): return f"{value:,.0f}/s"


# --- Processes

def run(command, **kwargs):
    return subprocess.run([str(part) for part in command], check=True, capture_output=True, text=True, **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(command, cwd: Path, env: dict):
    "A server on a free 127.0.0.1 port (its PORT variable) until the block ends; yields its process and base URL."
    port = free_port()
    log = tempfile.TemporaryFile("w+")
    process = subprocess.Popen([str(part) for part in command], cwd=cwd, env=env | {"PORT": str(port)},
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process, f"http://127.0.0.1:{port}"
    except Exception:
        log.seek(0)
        print(f"{' '.join(map(str, command))} said:\n{log.read()[-3000:]}", file=sys.stderr)
        raise
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
        log.close()


def wait_for_200(url: str, process, timeout: float = 60):
    "Polls url (following redirects) until it answers 200."
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200: return
        except (ConnectionError, urllib.error.URLError):
            pass  # not listening yet
        if process.poll() is not None or time.monotonic() > deadline: raise RuntimeError(f"{url} never answered 200")
        time.sleep(0.005)


def start_to_200(command, cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    with server(command, cwd, env) as (process, url):
        wait_for_200(url + "/", process)
        return time.perf_counter() - started


def requests_per_second(url: str, seconds: int) -> tuple[float, int]:
    "wrk with keep-alive (one thread, 10 connections): the requests per second and the count of failed answers."
    out = run(["wrk", "-t1", "-c10", f"-d{seconds}s", url]).stdout
    failed = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), int(failed[1]) if failed else 0


def cpu_seconds(pid: int) -> float:
    "The CPU time the process has used so far, user and system."
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid: int) -> int:
    "The process's peak resident set size, in bytes."
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) * 1024


# --- The machine

def machine() -> str:
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    ram = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1]) / 1024 ** 2
    system = platform.freedesktop_os_release().get("PRETTY_NAME", platform.system())
    return (f"{cpu[1] if cpu else platform.processor()}, {os.cpu_count()} cores, {ram:.1f} GiB RAM, "
            f"Python {platform.python_version()}, {system} (Linux {platform.release()})")


# --- Copier: the template against a one-file template, both with releases OLD and NEW (one upstream change)

def with_upstream_change(repo: Path, readme: Path) -> Path:
    "Tags the repository OLD, appends a line to its README template and tags that NEW."
    git(repo, "tag", OLD)
    readme.write_text(readme.read_text() + "\nOne upstream change.\n")
    commit_all(repo, "One upstream change")
    git(repo, "tag", NEW)
    return repo


def one_file_template(repo: Path) -> Path:
    for name, text in ONE_FILE_TEMPLATE.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    commit_all(repo, "One-file template")
    return with_upstream_change(repo, repo / "README.md.jinja")


class Scratch:
    "Fresh folders in the bench's temporary directory."

    def __init__(self, root: Path): self.root, self.count = root, 0

    def __call__(self, name: str) -> Path:
        self.count += 1
        return self.root / f"{name}-{self.count}"


def copy_time(fresh: Scratch, src: Path, **answers) -> float:
    dst = fresh("copy")
    took = timed(render, dst, src=src, vcs_ref=NEW, **answers)
    shutil.rmtree(dst)
    return took


def update_time(fresh: Scratch, src: Path, **answers) -> float:
    fork = render(fresh("update"), src=src, vcs_ref=OLD, **answers)
    commit_all(fork, "A fork")
    took = timed(copier.run_update, fork, vcs_ref=NEW, defaults=True, overwrite=True, conflict="inline", quiet=True)
    if "One upstream change." not in (fork / "README.md").read_text(): raise RuntimeError(f"{fork} was not updated")
    shutil.rmtree(fork)
    return took


def copier_rows(plan: Plan, fresh: Scratch, template: Path) -> list[Row]:
    one_file = one_file_template(fresh("one-file"))
    rows = []
    for flavour in FLAVOURS:
        for command, measure in (("copy", copy_time), ("update", update_time)):
            print(f"copier {command}, {flavour} ...", file=sys.stderr)
            base, subject = pairs(lambda: measure(fresh, one_file), lambda: measure(fresh, template, flavour=flavour),
                                  plan.runs, plan.warmups)
            figure = f"`copier {command}`{' with one upstream change' if command == 'update' else ''}, {flavour}"
            rows.append(ratio_row(figure, "a one-file copier template", base, subject, seconds, "≤ 1.3x", 1.3))
    return rows


# --- Set-up of a fresh fork: ./run setup (uv) against pip, both into a new venv with a warm cache

def pip_setup_time(fork: Path, venv: Path) -> float:
    "What ./run setup installs, the pip way: the pyproject's dependencies and test extra, constrained by the lock."
    project = tomllib.loads((fork / "pyproject.toml").read_text())["project"]
    requirements = venv.parent / "requirements.txt"
    requirements.write_text("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]))
    shutil.rmtree(venv, ignore_errors=True)
    started = time.perf_counter()
    run(["python3", "-m", "venv", venv])
    run([venv / "bin/python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-c", fork / "requirements.lock", "-r", requirements, "-r", fork / "requirements-local.txt"])
    return time.perf_counter() - started


def uv_setup_time(fork: Path) -> float:
    shutil.rmtree(fork / ".venv", ignore_errors=True)
    return timed(run, [fork / "run", "setup"], cwd=fork, env=os.environ | {"PYTHON": "python3"})  # pip's python


def setup_rows(plan: Plan, fork: Path, fresh: Scratch) -> list[Row]:
    print("fresh fork set-up, pip and uv ...", file=sys.stderr)
    pip_venv = fresh("pip") / ".venv"
    pip_venv.parent.mkdir()
    base, subject = pairs(lambda: pip_setup_time(fork, pip_venv), lambda: uv_setup_time(fork),
                          plan.setup_runs, plan.setup_warmups)
    shutil.rmtree(pip_venv.parent)
    uv_time = statistics.median(subject)
    return [Row("fresh fork set-up: venv + install, warm cache (`./run setup`, uv)", "pip, the same requirements",
                seconds(statistics.median(base)), seconds(uv_time), f"{ratio(base, subject):.2f}x", "≤ 30 s",
                uv_time <= 30)]


# --- The rendered server against a bare FastHTML app

def add_rows(db_path: Path, table: str, rows: list[tuple], columns: str):
    "Rows put straight into a server's database, as a notebook would, while it runs."
    with sqlite3.connect(db_path, timeout=30) as db:
        db.executemany(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(rows[0]))})", rows)
    db.close()


def todo_rows(count: int, start: int = 0) -> list[tuple]:
    return [(f"Todo {n}: something to do, with a title of a usual length", n % 3 == 0, n, 1)
            for n in range(start, start + count)]


def server_rows(plan: Plan, fork: Path, env: dict, fresh: Scratch) -> list[Row]:
    python = fork / ".venv/bin/python"
    bare = fresh("bare-app")
    bare.mkdir()
    (bare / "bare_app.py").write_text(BARE_APP)
    bare_env = os.environ | {"DB": str(bare / "bare.db")}
    print("process start to first 200 ...", file=sys.stderr)
    base, subject = pairs(lambda: start_to_200([python, "bare_app.py"], bare, bare_env),
                          lambda: start_to_200([python, "server.py"], fork, env), plan.runs, plan.warmups)
    rows = [ratio_row("rendered server: process start to first 200", "a bare FastHTML app", base, subject, seconds,
                      "≤ 1.3x", 1.3)]
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
        rows.append(rate_row(plan, f"**the landing page**, `GET {page}` with 10 todos: requests per second, "
                                   "keep-alive", bare_url + "/", landing, "≥ 0.7x", 0.7))
        rows.append(rate_row(plan, "`GET /` (a redirect to the landing page), requests per second, keep-alive",
                             bare_url + "/", fork_url + "/", "—", None))
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
        first = timed(client.get, url)  # the todos are drawn for the first time
        base, subject = pairs(lambda: timed(client.get, bare_url), lambda: timed(client.get, url),
                              plan.runs * 5, plan.warmups * 5)
    return Row(f"`GET {urllib.parse.urlsplit(url).path}` with {plan.long_list:,} todos: time to the whole page, p50",
               "a bare FastHTML page of as many rows", millis(statistics.median(base)),
               f"{millis(statistics.median(subject))} (the first after the start: {millis(first)})",
               f"{ratio(base, subject):.2f}x", "≤ 30 ms", statistics.median(subject) <= 0.030)


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


def rate_row(plan: Plan, figure: str, bare_url: str, url: str, target: str, limit: float | None) -> Row:
    "Requests per second; any error answers are shown, and a subject with errors misses its target."
    print(f"{figure} ...", file=sys.stderr)
    base, subject = pairs(lambda: requests_per_second(bare_url, plan.wrk_seconds),
                          lambda: requests_per_second(url, plan.wrk_seconds), plan.runs, plan.warmups)
    median = ratio([rate for rate, _ in base], [rate for rate, _ in subject])
    errors = sum(count for _, count in subject)
    return Row(figure, "a bare FastHTML page doing one SQLite query", rate_and_errors(base), rate_and_errors(subject),
               f"{median:.2f}x", target, None if limit is None else median >= limit and not errors)


def rate_and_errors(results) -> str:
    "The median rate, and how many answers of all the runs were errors (4xx or 5xx)."
    rate = per_second(statistics.median(rate for rate, _ in results))
    errors = sum(count for _, count in results)
    return f"{rate}, {errors} error answers" if errors else rate


# --- The event loop stays free: the landing page while the URL checker takes a long list and checks another

# The busy side, in a process of its own: starts the URL checker on a list of the local site's URLs, says
# "checking", then pastes the same list into new runs, one after the other, until that check has finished.
BUSY_CLIENT = '''\
import re, sys, time, urllib.parse
import httpx

app_url, site_url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
pasted = urllib.parse.urlencode({"text": "\\n".join(f"{site_url}/page/{n}" for n in range(count))})
form = {"Content-Type": "application/x-www-form-urlencoded"}
with httpx.Client(base_url=app_url, timeout=300, headers=form) as app:
    def new_run():
        return re.search(r'id="run-([\\w-]+)"', app.get("/url_checker/new").text)[1]

    checked = new_run()
    app.post(f"/url_checker/runs/{checked}/steps/urls", content=pasted).raise_for_status()
    app.post(f"/url_checker/runs/{checked}/steps/check", content="concurrency=20&timeout=30").raise_for_status()
    print("checking", flush=True)
    while "at work" in app.get("/url_checker/runs", params={"run": checked}).text:
        app.post(f"/url_checker/runs/{new_run()}/steps/urls", content=pasted).raise_for_status()
'''


async def page_latencies(client: httpx.AsyncClient, path: str, done: asyncio.Event, at_least: float) -> list[float]:
    "Asks for the page again and again, one request at a time, until done is set and at_least seconds passed."
    latencies, started = [], time.monotonic()
    while not done.is_set() or time.monotonic() - started < at_least:
        asked = time.monotonic()
        (await client.get(path)).raise_for_status()
        latencies.append(time.monotonic() - asked)
        await asyncio.sleep(0.01)
    return latencies


def busy_app_latencies(plan: Plan, app_url: str, site_url: str, busy: bool) -> list[float]:
    """The landing page's latencies, alone (busy=False, for 5 s) or while BUSY_CLIENT, a process of its own (this
    one only times the page), has plan.urls URLs checked in the background and the same list pasted meanwhile."""
    async def timed_page(done: asyncio.Event) -> list[float]:
        async with httpx.AsyncClient(base_url=app_url, timeout=300) as app:
            return await page_latencies(app, "/todos", done, 1)

    async def timed_while(client: subprocess.Popen | None) -> list[float]:
        done = asyncio.Event()
        if client is None: asyncio.get_running_loop().call_later(5, done.set)
        else: asyncio.get_running_loop().run_in_executor(None, lambda: (client.wait(), done.set()))
        return await timed_page(done)

    if not busy: return asyncio.run(timed_while(None))
    client = subprocess.Popen([sys.executable, "-c", BUSY_CLIENT, app_url, site_url, str(plan.urls)], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if client.stdout.readline() != "checking\n": raise RuntimeError(client.stderr.read())
    latencies = asyncio.run(timed_while(client))
    if client.returncode: raise RuntimeError(client.stderr.read())
    return latencies


def busy_app_row(plan: Plan, fork: Path, env: dict, fresh: Scratch) -> Row:
    python = fork / ".venv/bin/python"
    site = fresh("site")
    site.mkdir()
    (site / "local_site.py").write_text(LOCAL_SITE)
    data = fresh("busy-data")
    with server([python, site / "local_site.py"], site, dict(os.environ)) as (site_process, site_url), \
         server([python, "server.py"], fork, env | {"DATA_DIR": str(data)}) as (app_process, app_url):
        wait_for_200(site_url + "/page/1", site_process)
        wait_for_200(app_url + "/todos", app_process)
        print(f"the landing page while {plan.urls:,} URLs are pasted and checked ...", file=sys.stderr)
        base, subject = [], []
        for _ in range(max(1, plan.runs // 3)):  # a few pairs: each busy run checks the whole list
            base += busy_app_latencies(plan, app_url, site_url, busy=False)
            subject += busy_app_latencies(plan, app_url, site_url, busy=True)
    p99 = percentile(subject, 99)
    return Row(f"`GET /todos` while a list of {plan.urls:,} URLs is pasted again and again and another is checked "
               "in the background: p99", "the same page, the app idle", millis(percentile(base, 99)), millis(p99),
               f"{(p99 - percentile(base, 99)) * 1000:+.1f} ms", "≤ 100 ms", p99 <= 0.100)


# --- Writers: processes writing one database at once, and a notebook writing while the server serves

@contextmanager
def busy_cores():
    "A busy loop on every core until the block ends: what a loaded CI machine is like."
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for loop in loops: loop.kill()
        for loop in loops: loop.wait()


def writer(fork: Path, env: dict, name: str, rows: int, how: str) -> subprocess.Popen:
    return subprocess.Popen([fork / ".venv/bin/python", "-c", WRITER, name, str(rows), how], cwd=fork, env=env,
                            text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def failures(process: subprocess.Popen) -> int:
    "The writes a writer saw fail; a writer that crashed counts all of them."
    out, err = process.communicate(timeout=600)
    if process.returncode: print(err[-2000:], file=sys.stderr)
    return int(out.split()[-1]) if process.returncode == 0 else int(process.args[4])


def database_of(env: dict) -> Path:
    return next(Path(env["DATA_DIR"]).glob("*.db"))


def writers_at_once(plan: Plan, fork: Path, fresh: Scratch, how: str) -> tuple[int, int]:
    "plan.writers processes each write plan.writer_rows rows into a new database at once: (failed writes, rows)."
    data = fresh("writers")
    env = os.environ | {"DATA_DIR": str(data), "LOG_DIR": str(data / "logs")}
    run([fork / ".venv/bin/python", "-c", "import server"], cwd=fork, env=env)  # its tables, as the app makes them
    writers = [writer(fork, env, f"w{n}", plan.writer_rows, how) for n in range(plan.writers)]
    for process in writers:
        if process.stdout.readline() != "ready\n": raise RuntimeError(process.stderr.read())
    for process in writers:  # all have the database open: go
        process.stdin.write("go\n")
        process.stdin.flush()
    failed = sum(map(failures, writers))
    with sqlite3.connect(database_of(env)) as db: (count,) = db.execute("SELECT count(*) FROM todo").fetchone()
    db.close()
    return failed, count


def writer_rows(plan: Plan, fork: Path, env: dict, fresh: Scratch) -> list[Row]:
    print(f"{plan.writers} writers at once, {plan.writer_runs} times, every core busy ...", file=sys.stderr)
    expected = plan.writers * plan.writer_rows
    with busy_cores():
        base, subject = pairs(lambda: writers_at_once(plan, fork, fresh, "sqlite-timeout"),
                              lambda: writers_at_once(plan, fork, fresh, "fork"), plan.writer_runs, 0)

    def outcome(results) -> str:
        failed_runs = sum(1 for failed, count in results if failed or count != expected)
        return (f"{sum(failed for failed, _ in results):,} writes failed, in {failed_runs} of {len(results)} runs; "
                f"{min(count for _, count in results):,} to {max(count for _, count in results):,} rows")

    rows = [Row(f"{plan.writers} processes × {plan.writer_rows:,} rows into one database at once, every core busy "
                f"with a loop, {plan.writer_runs} times", "SQLite's own 5 s busy timeout (the fork before)",
                outcome(base), outcome(subject), "—", f"0 failed, {expected:,} rows every time",
                all(failed == 0 and count == expected for failed, count in subject))]
    rows.append(notebook_row(plan, fork, env, fresh))
    return rows


async def todo_requests(app_url: str, until) -> tuple[list[float], int]:
    "Adds a todo and shows the list, one after the other, until until() says stop: (adding latencies, errors)."
    latencies, errors, n = [], 0, 0
    async with httpx.AsyncClient(base_url=app_url, timeout=60, headers={"HX-Request": "true"}) as app:
        while not until(n):
            asked = time.monotonic()
            added = await app.post("/todos", data={"title": f"Served {n}"})
            latencies.append(time.monotonic() - asked)
            errors += added.status_code != 200
            errors += (await app.get("/todos")).status_code != 200
            n += 1
    return latencies, errors


def notebook_row(plan: Plan, fork: Path, env: dict, fresh: Scratch) -> Row:
    "A notebook-style process writes rows while the server adds and shows todos: nothing may fail on either side."
    rows = plan.writer_rows * 2
    print(f"a notebook writing {rows:,} rows while the server serves ...", file=sys.stderr)
    env = env | {"DATA_DIR": str(fresh("notebook-data"))}
    with server([fork / ".venv/bin/python", "server.py"], fork, env) as (app_process, app_url):
        wait_for_200(app_url + "/todos", app_process)
        count = plan.writer_rows // 10
        alone, _ = asyncio.run(todo_requests(app_url, lambda n: n >= count))
        notebook = writer(fork, env, "notebook", rows, "fork")
        notebook.stdout.readline()
        notebook.stdin.write("go\n")
        notebook.stdin.flush()
        served, errors = asyncio.run(todo_requests(app_url, lambda n: n >= count and notebook.poll() is not None))
        failed = failures(notebook)
    outcome = (f"{rows - failed:,}/{rows:,} rows written; {len(served) * 2:,} requests, {errors} errors; "
               f"adding a todo p99 {millis(percentile(served, 99))}")
    return Row(f"a notebook-style process writing {rows:,} rows while the server adds and shows todos",
               "the server alone", f"adding a todo p99 {millis(percentile(alone, 99))}", outcome, "—",
               "0 errors on either side", failed == 0 and errors == 0)


# --- The chat against reading the fake Ollama directly

@dataclass
class Reading:
    "One reply as its reader saw it."
    first_token: float  # seconds from asking to the first token
    latencies: list[float]  # per token: seconds from the LLM sending it to the reader having it
    total: float  # seconds from asking to the end of the reply


def percentile(values, n: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[n - 1]


async def read_direct(client: httpx.AsyncClient, count: int, pace: float, backend: str = "ollama") -> Reading:
    "Asks the fake LLM itself, the way the chat does, and reads the stream: Ollama's NDJSON or OpenAI's events."
    path, model = ("/api/chat", MODEL) if backend == "ollama" else ("/v1/chat/completions", f"{MODEL}:latest")
    body = {"model": model, "messages": [{"role": "user", "content": f"{count} {pace}"}], "stream": True}
    asked, first, latencies = time.monotonic(), None, []
    async with client.stream("POST", path, json=body) as response:
        async for line in response.aiter_lines():
            if backend == "openai":
                if not line.startswith("data: {"): continue
                content = json.loads(line[6:])["choices"][0]["delta"]["content"]
            else: content = json.loads(line)["message"]["content"]
            if not content: continue  # the end
            now = time.monotonic()
            first = first or now
            latencies.append(now - float(content))
    if len(latencies) != count: raise RuntimeError(f"the direct reader got {len(latencies)} tokens of {count}")
    return Reading(first - asked, latencies, time.monotonic() - asked)


async def read_chat(ws, count: int, pace: float, prefix: str = "") -> Reading:
    """Asks through the chat's WebSocket, as the page does, and reads the fragments until the reply is done. A frame
    that shows the whole reply so far (its Markdown rendered, or the finished reply) brings the tokens past those
    already seen; the others bring text to append. prefix starts the message (TOOL: a read tool round first)."""
    asked, first, latencies = time.monotonic(), None, []
    await ws.send(json.dumps({"msg": f"{prefix}{count} {pace}"}))
    while True:
        frame = await ws.recv()
        done = "assistant done" in frame
        now = time.monotonic()
        stamps = STAMP.findall(COPY_SOURCE.sub("", frame))
        if done or "innerHTML:#" in frame: stamps = stamps[len(latencies):]
        first = first or (now if stamps else None)
        latencies += [now - float(stamp) for stamp in stamps]
        if done: break
    if "msg error" in frame or len(latencies) != count:
        raise RuntimeError(f"the chat reader got {len(latencies)} tokens of {count}: {frame[:300]}")
    return Reading(first - asked, latencies, time.monotonic() - asked)


def ws_url(url: str) -> str: return url.replace("http://", "ws://", 1) + "/ws"


async def chat_pairs(plan: Plan, llm_url: str, app_url: str, process, backend: str = "ollama") -> list[Row]:
    """Through the chat against reading the LLM directly; the reply's tokens per second through either backend,
    with the CPU the chat server spent per token (it shares the machine with the LLM), the first token and the
    latency per token through Ollama's."""
    async with httpx.AsyncClient(base_url=llm_url, timeout=60) as llm, \
               httpx.AsyncClient(base_url=app_url, timeout=60) as app, \
               websockets.connect(ws_url(app_url), max_size=None) as ws:

        async def pairs_of(count: int, pace: float) -> list[tuple[Reading, Reading]]:
            "Direct then through the chat; the chat's history is cleared first, so every request is the same size."
            results = []
            for run_number in range(plan.warmups + plan.runs):
                direct = await read_direct(llm, count, pace, backend)
                (await app.post("/chat/clear")).raise_for_status()
                chat = await read_chat(ws, count, pace)
                if run_number >= plan.warmups: results.append((direct, chat))
            return results

        def difference_row(figure, results, value, target, limit) -> Row:
            base, subject = [value(d) for d, _ in results], [value(c) for _, c in results]
            added = statistics.median(s - b for b, s in zip(base, subject))
            return Row(figure, "reading the fake Ollama directly", millis(statistics.median(base)),
                       millis(statistics.median(subject)), f"{added * 1000:+.2f} ms", target,
                       None if limit is None else added <= limit)

        rows = []
        if backend == "ollama":
            print("chat: time to first token ...", file=sys.stderr)
            rows.append(difference_row("chat: time to first token seen by a WebSocket client", await pairs_of(5, 0),
                                       lambda r: r.first_token, "≤ +5 ms", 0.005))
            print("chat: latency per token ...", file=sys.stderr)
            paced = await pairs_of(plan.latency_tokens, TOKEN_PACE)
            for n, target, limit in ((50, "≤ +1 ms", 0.001), (99, "—", None)):
                rows.append(difference_row(f"chat: added latency per token, p{n} ({plan.latency_tokens} tokens, "
                                           f"{1 / TOKEN_PACE:.0f} per second)", paced,
                                           lambda r: percentile(r.latencies, n), target, limit))
        api = "Ollama's API" if backend == "ollama" else "the OpenAI-compatible API"
        print(f"chat: {plan.long_reply}-token reply through {api} ...", file=sys.stderr)
        cpu_before = cpu_seconds(process.pid)
        results = await pairs_of(plan.long_reply, 0)
        cpu_per_token = (cpu_seconds(process.pid) - cpu_before) / (len(results) + plan.warmups) / plan.long_reply
        base = [plan.long_reply / d.total for d, _ in results]
        subject = [plan.long_reply / c.total for _, c in results]
        row = ratio_row(f"chat: {plan.long_reply:,}-token reply, tokens per second (as fast as the LLM sends), {api}",
                        "reading the fake LLM directly", base, subject, per_second, "≥ 0.8x", 0.8,
                        higher_is_better=True)
        row.subject_value += f"; server CPU {cpu_per_token * 1e6:.0f} µs per token"
        return rows + [row]


async def tool_round_row(plan: Plan, app_url: str) -> Row:
    """A reply after a read tool round (the model calls list_todos, then answers) against the same reply asked
    without a tool call, both through the chat, whose history is cleared before each."""
    async with httpx.AsyncClient(base_url=app_url, timeout=60) as app, \
               websockets.connect(ws_url(app_url), max_size=None) as ws:
        async def total(prefix: str) -> float:
            (await app.post("/chat/clear")).raise_for_status()
            return (await read_chat(ws, 5, 0, prefix)).total
        results = [(await total(""), await total("TOOL ")) for _ in range(plan.warmups + plan.runs)][plan.warmups:]
    base, subject = [b for b, _ in results], [s for _, s in results]
    added = statistics.median(s - b for b, s in results)
    return Row("chat: added time of a read tool round (list_todos), 5-token reply", "the same reply without one",
               millis(statistics.median(base)), millis(statistics.median(subject)), f"{added * 1000:+.1f} ms",
               "—", None)


async def concurrent_streams(plan: Plan, app_url: str, process) -> Row:
    """plan.streams tabs ask at once, each in a profile of its own (a profile has one generation at a time, so the
    streams of one profile queue by design); each reply is paced like a hosted or GPU server."""
    pace = STREAM_PACE
    async with httpx.AsyncClient(base_url=app_url, timeout=60) as app:
        tabs = []
        for n in range(plan.streams):
            added = (await app.post("/profiles", data={"name": f"Stream {n}"})).raise_for_status()
            profile = max(map(int, re.findall(r'id="profile-(\d+)"', added.text)))
            (await app.post(f"/profiles/{profile}/switch")).raise_for_status()
            tabs.append(await websockets.connect(ws_url(app_url), max_size=None))  # the tab takes the active profile
    idle_rss = peak_rss(process.pid)
    started = time.monotonic()
    try:
        results = await asyncio.gather(*[read_chat(ws, plan.stream_tokens, pace) for ws in tabs],
                                       return_exceptions=True)
    finally:
        for ws in tabs: await ws.close()
    took = time.monotonic() - started
    readings = [r for r in results if isinstance(r, Reading)]
    errors = [r for r in results if not isinstance(r, Reading)]
    if errors: print(f"{len(errors)} streams failed, the first with: {errors[0]!r}", file=sys.stderr)
    p99 = millis(percentile([t for r in readings for t in r.latencies], 99)) if readings else "—"
    outcome = (f"{len(readings)}/{plan.streams} complete, {len(errors)} errors, in {took:.1f} s; p99 token latency "
               f"{p99}; server peak RSS {peak_rss(process.pid) / 2 ** 20:.0f} MB ({idle_rss / 2 ** 20:.0f} MB before)")
    return Row(f"{plan.streams} concurrent chat streams ({plan.stream_tokens} tokens each, {1 / pace:.0f} per second)",
               "—", "—", outcome, "—", "0 errors, all complete; peak RSS reported",
               not errors and len(readings) == plan.streams)


# --- The site crawl: the fork's Site crawl app against its generated test site, through the app's own routes

async def crawl_rows(plan: Plan, fork: Path, env: dict, fresh: Scratch) -> list[Row]:
    """One crawl of a plan.crawl_pages-page local site with no delay, 8 requests at once: pages per second, the time
    until the first crawled page is on screen (the progress line, pushed over the WebSocket), the server's peak RSS
    at 1,000 pages and at the end, then the answer time of the pages table at that many rows."""
    script = fresh("site") / "big_site.py"
    script.parent.mkdir()
    script.write_text(BIG_SITE)
    python = fork / ".venv/bin/python"
    with server([python, script], fork, dict(os.environ) | {"PAGES": str(plan.crawl_pages - 1)}) as (site, site_url), \
         server([python, "server.py"], fork, env) as (app, app_url):
        wait_for_200(site_url + "/", site)
        wait_for_200(app_url + "/", app)
        async with httpx.AsyncClient(base_url=app_url, timeout=60) as client:
            key = re.search(r'id="run-([\w-]+)"', (await client.get("/site_crawl/new")).text)[1]
            (await client.post(f"/site_crawl/runs/{key}/steps/site", data={"start": site_url + "/"})).raise_for_status()
            idle = peak_rss(app.pid)
            print(f"site crawl of {plan.crawl_pages:,} pages ...", file=sys.stderr)
            async with websockets.connect(ws_url(app_url), max_size=None) as tab:  # a tab watching, until it sees one
                started = time.monotonic()
                (await client.post(f"/site_crawl/runs/{key}/steps/crawl", data={
                    "max_pages": plan.crawl_pages, "max_depth": 100, "concurrency": 8, "delay": 0, "timeout": 30,
                    "max_size_mb": 5, "user_agent": "bench-crawler"})).raise_for_status()
                while not any(int(n.replace(",", "")) >= 1 for n in CRAWLED.findall(await tab.recv())): pass
                first_result = time.monotonic() - started
            crawl_db, at_1000 = Path(env["DATA_DIR"]) / "crawls" / f"{key}.db", None
            while 'id="step-crawl" class="step done"' not in (await client.get("/site_crawl")).text:
                if at_1000 is None and crawled_pages(crawl_db) >= 1000: at_1000 = peak_rss(app.pid)
                await asyncio.sleep(0.25)
            took, done = time.monotonic() - started, crawled_pages(crawl_db)
            at_end = peak_rss(app.pid)
            print("pages table answer time ...", file=sys.stderr)
            views = [{}, {"sort": "title", "desc": "1"}, {"q": "Page 12"}, {"finding": "duplicate_title"},
                     {"sort": "inlinks", "desc": "1", "page": "40"}]
            answers = []
            for _ in range(plan.runs * 3):
                for view in views:
                    asked = time.perf_counter()
                    (await client.get(f"/site_crawl/runs/{key}/pages", params=view)).raise_for_status()
                    answers.append(time.perf_counter() - asked)
    mb = lambda size: f"{size / 2 ** 20:.0f} MB"
    grew = at_end / at_1000 if at_1000 else None
    return [
        Row(f"site crawl of a {plan.crawl_pages:,}-page local site: pages per second (8 at once, no delay)", "—", "—",
            f"{done / took:,.0f}/s ({done:,} pages in {took:.0f} s)", "—", "all pages crawled",
            done == plan.crawl_pages),
        Row("site crawl: time to the first crawled page on screen (its progress line over the WebSocket)", "—", "—",
            f"{first_result:.2f} s", "—", "≤ 2 s", first_result <= 2),
        Row("site crawl: server peak RSS at 1,000 pages and at the end", "—", "—",
            f"{mb(at_1000) if at_1000 else '—'} at 1,000, {mb(at_end)} at {done:,} ({mb(idle)} before)", "—",
            "bounded: ≤ 1.25x from 1,000 pages to the end", None if grew is None else grew <= 1.25),
        Row(f"site crawl: pages table answer time at {done:,} rows (sorted, searched, filtered, paged)", "—", "—",
            f"p50 {millis(statistics.median(answers))}, p95 {millis(percentile(answers, 95))}", "—", "p95 ≤ 100 ms",
            percentile(answers, 95) <= 0.1),
    ]


def crawled_pages(crawl_db: Path) -> int:
    "Pages the crawl has fetched so far, read from its own SQLite file."
    if not crawl_db.exists(): return 0
    with closing(sqlite3.connect(crawl_db, timeout=5)) as db:
        try: return db.execute("SELECT count(*) FROM page WHERE state = 'done'").fetchone()[0]
        except sqlite3.OperationalError: return 0  # the file is there, its tables not yet


# --- The report

NOTES = "\n## Notes\n"  # what follows it in BENCHMARKS.md is written by hand, and kept when the bench runs again


def kept_notes(path: Path) -> str:
    "The hand-written notes of the report at path (what each change bought, what holds a figure back), if any."
    text = path.read_text() if path.exists() else ""
    return NOTES + text.split(NOTES, 1)[1] if NOTES in text else ""


def report(plan: Plan, quick: bool, rows: list[Row]) -> str:
    met = {True: "yes", False: "**no**", None: "—"}
    lines = [
        "# Benchmarks", "",
        f"Measured by `scripts/bench{' --quick' if quick else ''}` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.", "",
        f"Machine: {machine()}.", "",
        *(["**Quick mode**: a few pairs of a smaller workload, to keep the bench working; these numbers are not for "
           "reading.", ""] if quick else []),
        f"Each figure is measured in pairs, a baseline run then a subject run: {plan.warmups} unmeasured pair(s), "
        f"then {plan.runs} (fork set-up: {plan.setup_warmups} and {plan.setup_runs}). Values are medians; "
        "\"subject vs baseline\" is the median of the per-pair ratios (subject / baseline) or differences "
        "(subject − baseline).", "",
        "| figure | baseline | baseline value | subject value | subject vs baseline | target | met |",
        "|---|---|---|---|---|---|---|",
        *(f"| {r.figure} | {r.baseline} | {r.baseline_value} | {r.subject_value} | {r.compared} | {r.target} "
          f"| {met[r.met]} |" for r in rows),
        "", "How:", "",
        "- copier: the template as it is now (uncommitted changes included) and the one-file template (copier.yml, "
        "README.md.jinja and the answers file), each a git repository with two releases, through copier's API "
        "(tests/template_tools.render). `copy` renders the newer release; `update` takes a committed fork of the "
        "older one to the newer, whose one change is a line added to README.md.jinja.",
        f"- The fork is pipulate{'' if plan.jupyter else ' without JupyterLab'}. Set-up: `./run setup` (a venv, "
        "then uv installs pyproject.toml with its test extra, constrained by requirements.lock) against "
        "`python -m venv` and `pip install` of the same requirements and constraints, both with their caches warm.",
        "- Servers run in the fork's venv on 127.0.0.1: `python server.py` (uvicorn, one process) and a bare FastHTML "
        "app (`fast_app` with one table, one page listing its rows, `uvicorn.run`). Start: from spawning the process "
        "to the first 200 for `/`, redirects followed. Requests per second: `wrk -t1 -c10` (keep-alive) for "
        f"{plan.wrk_seconds} s; error answers (4xx, 5xx) are counted. The fork's page shows the todos added through "
        "it (so its chat panel shows their notes), the bare page as many rows; the long list's rows are put into "
        "both databases directly. Its time is one request after the other, from asking to the whole answer.",
        f"- At once: {plan.at_once} connections opened together, each asking once (`Connection: close`).",
        f"- Idle and busy: the landing page asked for one request after the other, 10 ms apart, alone, then while "
        f"the URL checker checks {plan.urls:,} URLs of a local site (20 at a time) and the same list is pasted into "
        "new runs one after the other until the check is done.",
        f"- Writers: each run is a new database; {plan.writers} processes open it through the fork's database.py "
        f"and insert {plan.writer_rows:,} rows each in a loop, all starting together, while a busy loop runs on every "
        "core. The baseline prepares the connections as the fork did before (SQLite's busy timeout of 5 s, "
        "synchronous FULL). The notebook-style process does the same while the server adds and shows todos.",
        "- Chat: the fork's fake LLM (tests/fake_ollama.py) stamps each token with the time it sent it. Directly: "
        "one keep-alive httpx client streams /api/chat (Ollama) or /v1/chat/completions (OpenAI-compatible). "
        "Through the chat: a WebSocket client sends the message as the page does and reads the fragments until the "
        "reply is done; its history is cleared before each run. The server runs once with each LLM_BACKEND. "
        f"The concurrent streams are paced at {1 / STREAM_PACE:,.0f} tokens per second each. The chat reads the "
        "LLM's lines in batches as they arrive, builds the fragment for new text by hand, and sends in one frame "
        "what arrived while the previous frame was being sent.",
        f"- Site crawl: the fork's Site crawl app, driven through its routes, crawls the fork's generated test site "
        f"(tests/local_site.py, BigSite: {plan.crawl_pages:,} pages of about 7 KB, a tree of ten links a page, served "
        "by uvicorn on the same two cores). Peak RSS is the server's VmHWM. The table's answer time is that of "
        "GET /site_crawl/runs/KEY/pages for five views (the crawl order, sorted by title, a search, a finding, a far "
        "page sorted by in-links), each asked repeatedly after the crawl.",
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few pairs of a smaller workload, for CI")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md", help="default: BENCHMARKS.md")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if not shutil.which("wrk"): sys.exit("scripts/bench needs wrk for requests per second: apt-get install wrk")

    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        fresh = Scratch(Path(scratch))
        template = snapshot(fresh("template"))
        template = with_upstream_change(template, template / "template" / "README.md.jinja")
        rows = copier_rows(plan, fresh, template)
        fork = render(fresh("fork"), src=template, vcs_ref=NEW, flavour="pipulate", jupyter=plan.jupyter)
        rows += setup_rows(plan, fork, fresh)

        stamped_llm = fresh("llm") / "stamped_llm.py"
        stamped_llm.parent.mkdir()
        stamped_llm.write_text(STAMPED_LLM)
        with server([fork / ".venv/bin/python", stamped_llm], fork, dict(os.environ)) as (llm, llm_url):
            wait_for_200(llm_url + "/api/version", llm)
            env = os.environ | {"HOST": "127.0.0.1", "DEV": "0", "LLM_BACKEND": "ollama", "OLLAMA_HOST": llm_url,
                                "DATA_DIR": str(fresh("data")), "LOG_DIR": str(fresh("logs"))}
            rows += server_rows(plan, fork, env, fresh)
            rows.append(busy_app_row(plan, fork, env, fresh))
            for backend, backend_env in BACKENDS.items():
                served = server([fork / ".venv/bin/python", "server.py"], fork, env | backend_env(llm_url))
                with served as (app, app_url):
                    wait_for_200(app_url + "/", app)
                    rows += asyncio.run(chat_pairs(plan, llm_url, app_url, app, backend))
                    if backend == "ollama":
                        print("concurrent chat streams ...", file=sys.stderr)
                        rows.append(asyncio.run(concurrent_streams(plan, app_url, app)))
                        print("chat: a read tool round ...", file=sys.stderr)
                        rows.append(asyncio.run(tool_round_row(plan, app_url)))
            rows += asyncio.run(crawl_rows(plan, fork, env | {"DATA_DIR": str(fresh("crawl-data"))}, fresh))
        rows += writer_rows(plan, fork, env, fresh)

    args.output.write_text(report(plan, args.quick, rows) + kept_notes(args.output))
    print(f"Wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
