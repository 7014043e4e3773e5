"""Notebook apps: the fork's URL checker notebook (notebooks/apps/url_checker.ipynb) served as an app, driven
through its routes as the page drives it, with a tab watching over the WebSocket. Its first step's start, from Run
to its first cell (a kernel started for it), against a kernel started by jupyter_client alone; and its second step,
from Run to done, against `jupyter execute` of the very cells the app's kernel runs for it."""

import html
import json
import os
import re
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
from websockets.sync.client import connect

from .busy_app import local_site
from .measuring import Row, Scratch, load_average, pairs, ratio_row, run, seconds, server, timed, wait_for_200, ws_url
from .plan import Plan

NOTEBOOK = "notebooks/apps/url_checker.ipynb"
APP = "/notebook_url_checker"
CHECK = {"CONCURRENCY": 20, "TIMEOUT": 30}  # the second step's fields, as the busy app's URL checker checks

# Prints, as JSON, the sources of the cells the app's kernel runs for each step of a notebook (setup, parameters,
# the inputs set as data, the steps before, its own), given all the run's inputs: read by the fork's own modules.
CELLS = '''\
import json, sys
from pathlib import Path
from core.notebook_apps import read_app
from core.notebook_kernel import cells_to_run

app, inputs = read_app(Path(sys.argv[1])), json.loads(sys.argv[2])
print(json.dumps([[source for _, source in cells_to_run(
    app, step, {p.name: inputs[p.name] for done in app.steps[:n + 1] for p in done.fields})]
    for n, step in enumerate(app.steps)]))
'''

# The floor of a step's start: a kernel started by jupyter_client (on local sockets, as the app's) in a process that
# has imported it already, in the notebook's folder, ready for its first cell. One for each line read; says how
# long each took to start.
KERNEL_START = '''\
import shutil, sys, tempfile, time
from jupyter_client.manager import KernelManager

sockets = tempfile.mkdtemp(prefix="kernels-")
print("ready", flush=True)
for n, _ in enumerate(sys.stdin):
    started = time.perf_counter()
    manager = KernelManager(kernel_name="python3", transport="ipc", connection_file=f"{sockets}/kernel-{n}.json")
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    print(time.perf_counter() - started, flush=True)
    client.stop_channels()
    manager.shutdown_kernel(now=True)
shutil.rmtree(sockets)
'''
CELL_AT_WORK = re.compile(r"Cell \d+ of \d+")  # the step's progress once its kernel runs a cell
PROBLEM = re.compile(r'class="problem">([^<]*)<')


@contextmanager
def plain_notebook(fork: Path, env: dict, inputs: dict):
    """A notebook of the cells the app's kernel runs for the second step, given these inputs, and no tags (the app
    does not serve it), beside the app's notebook: `jupyter execute` runs it in the same folder. Yields its path."""
    cells = json.loads(run([fork / ".venv/bin/python", "-c", CELLS, NOTEBOOK, json.dumps(inputs)], cwd=fork,
                           env=env).stdout)[1]
    path = fork / NOTEBOOK.replace(".ipynb", "-plain.ipynb")
    path.write_text(json.dumps({
        "cells": [{"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}
                  for source in cells],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 4}))
    try: yield path
    finally: path.unlink()


@contextmanager
def kernel_starter(fork: Path, env: dict):
    "KERNEL_START, a process of the fork's python; yields a function that starts a kernel and says how long it took."
    process = subprocess.Popen([fork / ".venv/bin/python", "-c", KERNEL_START], cwd=fork / NOTEBOOK.rpartition("/")[0],
                               env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def start() -> float:
        process.stdin.write("go\n")
        process.stdin.flush()
        return float(process.stdout.readline())
    try:
        if process.stdout.readline() != "ready\n": raise RuntimeError("jupyter_client did not start")
        yield start
    finally:
        process.stdin.close()
        process.wait(30)


class AppSteps:
    """The notebook's app in a running server, its steps submitted as the page does and watched as a tab sees them:
    each first step in a new run, each second step in a run whose first is done."""

    def __init__(self, client: httpx.Client, tab, inputs: dict):
        self.client, self.tab, self.inputs, self.ready = client, tab, inputs, []

    def first_step(self) -> tuple[float, float]:
        "Seconds from Run to its first cell at work, and to done."
        key = re.search(r'id="run-([\w-]+)"', self.client.get(f"{APP}/new").text)[1]
        taken = self.step(key, "step1", {"URLS": self.inputs["URLS"]})
        self.ready.append(key)
        return taken

    def second_step(self) -> float:
        "Seconds from Run to done."
        return self.step(self.ready.pop(), "step2", CHECK)[1]

    def step(self, key: str, step: str, form: dict) -> tuple[float, float]:
        done = re.compile(rf'<li class="step done" id="step-{step}"|<li id="step-{step}" class="step done"')
        asked, at_work = time.monotonic(), None
        self.client.post(f"{APP}/runs/{key}/steps/{step}", data=form).raise_for_status()
        while True:
            frame = self.tab.recv(timeout=600)
            if f'id="run-{key}"' in frame and (problem := PROBLEM.search(frame)):
                raise RuntimeError(f"the notebook app's {step} failed: {html.unescape(problem[1])}")
            at_work = at_work or (time.monotonic() if CELL_AT_WORK.search(frame) else None)
            if f'id="run-{key}"' in frame and done.search(frame): break
        if at_work is None: raise RuntimeError(f"the notebook app's {step} showed no cell at work")
        return at_work - asked, time.monotonic() - asked


def notebook_app_rows(plan: Plan, fork: Path, env: dict, fresh: Scratch) -> list[Row]:
    """plan.runs new runs of the app, each taken through its two steps (the first parses plan.notebook_urls URLs of
    a local site, the second checks them), in pairs with the floor of the first and `jupyter execute` of the second.
    The first step after the app's start, which imports nbclient in the server, is measured apart."""
    python, site = fork / ".venv/bin/python", local_site(fresh)
    env = env | {"DATA_DIR": str(fresh("notebook-app-data"))}
    print(f"notebook app: its first step, and checking {plan.notebook_urls} URLs ...", file=sys.stderr)
    with server([python, site], site.parent, dict(os.environ)) as (site_process, site_url), \
         server([python, "server.py"], fork, env) as (app_process, app_url):
        wait_for_200(site_url + "/page/1", site_process)
        wait_for_200(app_url + APP, app_process)
        inputs = {"URLS": "\n".join(f"{site_url}/page/{n}" for n in range(plan.notebook_urls))} | CHECK
        with plain_notebook(fork, env, inputs) as plain, kernel_starter(fork, env) as start_kernel, \
             httpx.Client(base_url=app_url, timeout=600) as client, connect(ws_url(app_url), max_size=None) as tab:
            app, loads = AppSteps(client, tab, inputs), [load_average()]
            after_start = app.first_step()
            floor, firsts = pairs(start_kernel, app.first_step, plan.runs, plan.warmups)
            executed, checks = pairs(lambda: timed(run, [fork / ".venv/bin/jupyter", "execute", plain], cwd=fork,
                                                   env=env), app.second_step, plan.runs, plan.warmups)
            loads.append(load_average())
    load = f"; load average {min(loads):.1f} to {max(loads):.1f}"
    start = ratio_row("notebook app (the URL checker notebook): its first step's start, from Run to its first cell "
                      "at work, kernel start included", "a kernel started by jupyter_client alone, ready for a cell",
                      floor, [at_work for at_work, _ in firsts], seconds, "—", None)
    start.subject_value += f" (the first after the app's start: {seconds(after_start[0])}){load}"
    added = statistics.median(s - b for b, s in zip(executed, checks))
    return [start, Row(f"notebook app: its second step, checking {plan.notebook_urls} URLs of a local site, from Run "
                       "to done (the first step's cells run again before it)",
                       "`jupyter execute` of the same cells (kernel start included)",
                       seconds(statistics.median(executed)), seconds(statistics.median(checks)) + load,
                       f"{added * 1000:+.0f} ms", "—", None)]
