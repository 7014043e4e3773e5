"""BENCHMARKS.md: the table of every figure, how each was measured, and the notes written by hand below it."""

import os
import platform
import re
from datetime import datetime, timezone
from pathlib import Path

from .chat import STREAM_PACE
from .measuring import Row
from .plan import Plan


def machine() -> str:
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    ram = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1]) / 1024 ** 2
    system = platform.freedesktop_os_release().get("PRETTY_NAME", platform.system())
    return (f"{cpu[1] if cpu else platform.processor()}, {os.cpu_count()} cores, {ram:.1f} GiB RAM, "
            f"Python {platform.python_version()}, {system} (Linux {platform.release()})")


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
        "app (`fast_app` with one table, one `async def` page listing its rows, `uvicorn.run`). Start: from spawning "
        f"the process to the first 200 for `/`, redirects followed, with {plan.long_list:,} rows to show; a second "
        "bare app imports fastlite as the server does, without pandas and numpy (apswutils imports them whenever "
        "they are installed, to map their types). The first page after a start is asked for as soon as the port "
        "is open, then 7 more, each on a new connection. Requests per second: `wrk -t1 -c10` (keep-alive) "
        f"for {plan.wrk_seconds} s, with the server's CPU time (user and system) over the requests answered; error "
        "answers (4xx, 5xx) are counted, and a baseline that gave any is no floor: no ratio is given against it. "
        "The fork's page shows the todos added through "
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
        *([f"- Notebook apps: the fork's notebooks/apps/url_checker.ipynb served as an app, driven through its routes "
           "with a WebSocket tab watching, as the page is; each round makes a new run. Its first step's start is from "
           "posting the step's form to its progress saying a cell is at work (the kernel started and connected); the "
           "floor is a kernel started by jupyter_client (ipc, as the app's) in a process that has it imported. Its "
           f"second step checks {plan.notebook_urls} URLs of a local site (20 at a time) and is timed to the step "
           "shown done, against `jupyter execute` of a notebook of exactly the cells the app's kernel runs for it "
           "(the parameters, the inputs, the first step's cells, its own), in the same folder: a process that "
           "imports nbclient, starts a kernel, runs them and stops it. Each row gives the load average (one minute) "
           "at the start and the end of its rounds."] if plan.jupyter else []),
    ]
    return "\n".join(lines) + "\n"
