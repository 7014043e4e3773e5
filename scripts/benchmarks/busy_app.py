"""The event loop stays free: the landing page while the URL checker takes a long list and checks another."""

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .measuring import Row, Scratch, millis, percentile, server, wait_for_200
from .plan import Plan

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


def local_site(fresh: Scratch) -> Path:
    "LOCAL_SITE's script in a folder of its own, to serve with the fork's python."
    site = fresh("site")
    site.mkdir()
    (site / "local_site.py").write_text(LOCAL_SITE)
    return site / "local_site.py"


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
    site = local_site(fresh)
    data = fresh("busy-data")
    with server([python, site], site.parent, dict(os.environ)) as (site_process, site_url), \
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
