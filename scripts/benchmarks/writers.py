"""Writers: processes writing one database at once, and a notebook writing while the server serves."""

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from .measuring import Row, Scratch, millis, pairs, percentile, run, server, wait_for_200
from .plan import Plan

# A process of the fork writing rows through its database layer, as a notebook or a script does. With
# `sqlite-timeout` it prepares its connection as the fork did before database.py: SQLite's own 5 s busy timeout.
WRITER = '''\
import sys

import apsw

from core import config
from core.database import open_database

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
