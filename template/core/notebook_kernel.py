"""Runs a notebook app's step in a Jupyter kernel of its own, and draws what its cells showed.

A step's kernel runs, in order: the set-up cells, the parameters cell, a cell that sets the run's inputs (as JSON,
see notebook_apps.injected), the cells of the steps before it, then its own. So what a step needs from the steps
before it is remade from what the run keeps, their inputs, and never lives only in a kernel: Resume after a
restart, Revert to step N and Re-run are the same thing, a fresh kernel and the run's inputs. Only the step's own
cells' outputs are kept, as the notebook's mime bundles, and drawn when the step is shown: a DataFrame as a table
to explore (notebook_tables.py), and every piece of HTML through the chat's sanitiser.

The kernel is the one JupyterLab uses (ipykernel, through jupyter_client and nbclient), started in the notebook's
folder as JupyterLab would, on local sockets (ipc). Cancelling the step interrupts the kernel, then kills it. No
kernel outlives the app: each watches the app's process and ends with it (ipykernel's parent poller, for a kill -9
too), and those still running when the app exits are killed with their process group.
"""

import asyncio
import atexit
import base64
import importlib
import itertools
import logging
import os
import re
import secrets
import shutil
import signal
import tempfile
import time
import traceback
from pathlib import Path

from fasthtml.common import *

from core import config
from core import explore
from core import notebook_tables
from core.chat import SANITISER, markdown_html
from core.notebook_apps import NotebookApp, NotebookStep, injected

log = logging.getLogger("app")
LIVE = set()  # the kernels' processes at work, killed at exit with their groups
SOCKETS = tempfile.mkdtemp(prefix="kernels-")  # private (0700), short (a socket's path has 107 bytes at most)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
KEPT_OUT = re.compile(r"\.db(-wal|-shm|-journal)?$")  # the app's own databases are no step's files


@atexit.register
def kill_kernels():
    for pid in list(LIVE):
        try: os.killpg(pid, signal.SIGKILL)  # jupyter_client starts each kernel in a session of its own
        except ProcessLookupError: pass
    shutil.rmtree(SOCKETS, ignore_errors=True)


def first_line(source: str) -> str: return next((line for line in source.splitlines() if line.strip()), "")


def cells_to_run(app: NotebookApp, step: NotebookStep, inputs: dict) -> list[tuple[int | None, str]]:
    "(the notebook cell's index, or None for the inputs cell; its source) of every cell the step's kernel runs."
    before = [i for done in app.steps[:app.steps.index(step)] for i in done.cells]
    params = [app.parameters] if app.parameters is not None else []
    # The inputs cell sets up the kernel too: a DataFrame shows its data, for the app's tables (notebook_tables.py).
    setting = injected(inputs) + notebook_tables.IN_KERNEL
    return ([(i, app.sources[i]) for i in app.setup + params] + [(None, setting)]
            + [(i, app.sources[i]) for i in before + step.cells])


def data_files() -> dict[Path, int]:
    "Every file under the data folder with its time of change: what a step wrote is what changed meanwhile."
    return {path: path.stat().st_mtime_ns for path in config.DATA_DIR.rglob("*")
            if path.is_file() and not KEPT_OUT.search(path.name)}


class Kernel:
    "A kernel for one step: `async with Kernel(folder) as kernel: await kernel.run(source)`."

    def __init__(self, folder: Path):
        from jupyter_client.manager import AsyncKernelManager  # imported when a step runs: the app's start does without
        # Its sockets' paths come from its connection file's, absolute: else they would be relative to two folders.
        connection = Path(SOCKETS) / f"kernel-{secrets.token_hex(8)}.json"
        self.manager = AsyncKernelManager(kernel_name="python3", transport="ipc", connection_file=str(connection))
        self.folder, self.client, self.started = folder, None, None

    async def __aenter__(self):
        import nbformat  # with nbclient, imported when a step runs: nbformat's schema validator takes seconds
        from nbclient import NotebookClient
        started = time.perf_counter()
        try:
            await self.manager.start_kernel(cwd=str(self.folder))
            LIVE.add(self.manager.provisioner.process.pid)
            self.client = NotebookClient(nbformat.v4.new_notebook(), km=self.manager, timeout=None,
                                         startup_timeout=60)
            await self.client.async_start_new_kernel_client()
        except BaseException:  # cancelled, or it never answered: the kernel goes all the same
            await self.__aexit__()
            raise
        self.started = time.perf_counter() - started  # the kernel's start, ready for its first cell
        return self

    async def run(self, source: str):
        "Runs one cell; its outputs. CellExecutionError when it raises, DeadKernelError when the kernel dies."
        from nbformat.v4 import new_code_cell
        cell = new_code_cell(source)
        self.client.nb.cells.append(cell)
        await self.client.async_execute_cell(cell, len(self.client.nb.cells) - 1)
        return cell.outputs

    async def __aexit__(self, *exception):
        "Ends the kernel: a cancelled step's is interrupted, then killed; a finished one's killed at once."
        pid = self.manager.provisioner.process.pid if self.manager.provisioner else None
        try:
            if asyncio.current_task().cancelling() and self.manager.has_kernel:
                await asyncio.wait_for(self.manager.interrupt_kernel(), 0.5)
        except (TimeoutError, RuntimeError): pass
        finally:
            if self.client and self.client.kc: self.client.kc.stop_channels()
            if self.manager.has_kernel: await self.manager.shutdown_kernel(now=True)
            LIVE.discard(pid)


def traceback_text(error: BaseException) -> str:
    "The error with where it was raised, for the log: a kernel's failure is the notebook's (no typed text in it)."
    return "".join(traceback.format_exception(error)[-3:]).strip()


def failure(at: tuple[int | None, str] | None, error: BaseException) -> str:
    "The sentence of a failed step: the cell that failed, by its number in the notebook, and the error."
    from nbclient.exceptions import DeadKernelError
    if at is None: where = "Starting the kernel"
    else: where = f"Cell {at[0] + 1} (“{first_line(at[1])[:60]}”)" if at[0] is not None else "Setting the inputs"
    if isinstance(error, DeadKernelError): return f"{where} stopped the kernel (it crashed or ran out of memory)."
    if isinstance(error, asyncio.CancelledError): return f"{where} was cut short by the kernel's client."
    named = getattr(error, "ename", type(error).__name__)
    return f"{where} failed: {named}: {getattr(error, 'evalue', str(error))}"


async def run_step(app: NotebookApp, step: NotebookStep, inputs: dict, job) -> dict:
    """Runs the step's cells in a fresh kernel with these inputs (the run's so far), moving the job's progress bar
    cell by cell: each of its own cells' outputs, the files it wrote under data/, and the kernel's start in seconds.
    RuntimeError names a failing cell."""
    cells, own = cells_to_run(app, step, inputs), set(step.cells)
    before, shown, at = data_files(), [], None
    await job.progress(0, len(cells), "Starting a kernel…")
    await asyncio.to_thread(importlib.import_module, "nbclient")  # imported when a step runs, off the event loop:
    from nbclient.exceptions import CellExecutionError, DeadKernelError  # nbformat's schema validator takes seconds
    try:
        async with Kernel(app.path.parent) as kernel:
            for n, at in enumerate(cells):
                await job.progress(n, len(cells), f"Cell {n + 1} of {len(cells)}: {first_line(at[1])[:80]}")
                outputs = await kernel.run(at[1])
                if at[0] in own and outputs: shown.append({"cell": at[0] + 1, "outputs": outputs})
    except (CellExecutionError, DeadKernelError, asyncio.CancelledError) as error:
        # nbclient turns a cancel into DeadKernelError: a cancelled step (Cancel, the app's end) stays so
        if asyncio.current_task().cancelling(): raise asyncio.CancelledError from None
        if not isinstance(error, CellExecutionError):  # whose text may hold the inputs: not for the log
            log.warning("notebook app %s: %s", app.name, traceback_text(error))
        raise RuntimeError(failure(at, error)) from None
    after = data_files()
    wrote = sorted(str(path.relative_to(config.DATA_DIR)) for path in after if before.get(path) != after[path])
    await job.progress(len(cells), len(cells), f"“{step.title}” ran {len(step.cells)} cells.")
    return {"outputs": shown, "files": wrote, "kernel_start": round(kernel.started, 3)}


# --- Drawing the outputs, as JupyterLab would, safely
def text_of(value) -> str: return "".join(value) if isinstance(value, list) else value


def image(kind: str, data) -> Img:
    encoded = data if kind == "image/png" else base64.b64encode(text_of(data).encode()).decode()
    return Img(src=f"data:{kind};base64,{text_of(encoded).strip()}", alt="A chart from the notebook")


def output_view(output: dict):
    kind = output["output_type"]
    if kind == "stream": return Pre(text_of(output["text"]))
    if kind == "error": return P(f"{output['ename']}: {output['evalue']}", cls="problem")
    data = output.get("data", {})
    if "text/html" in data:  # a table, say, that may scroll: the keyboard reaches it too
        return Div(NotStr(SANITISER.clean(text_of(data["text/html"]))), cls="overflow-auto", tabindex="0",
                   role="region", aria_label="Output")
    for picture in ("image/png", "image/svg+xml"):
        if picture in data: return image(picture, data[picture])
    if "text/markdown" in data: return NotStr(markdown_html(text_of(data["text/markdown"])))
    return Pre(ANSI.sub("", text_of(data.get("text/plain", ""))))


def step_outputs(value: dict, run_url: str, step_id: str):
    """A done step: what its cells showed, cell by cell (its tables to explore, from run_url/tables/STEP/N), and a
    download link for each file it wrote (run_url/files/STEP/N)."""
    links = [A(f"Download {Path(name).name}", href=f"{run_url}/files/{step_id}/{n}", download=True, role="button",
               cls="outline") for n, name in enumerate(value["files"])]
    numbers = itertools.count()  # of the step's tables, in the order it showed them
    def view(output: dict):
        if notebook_tables.MIME not in output.get("data", {}): return output_view(output)
        n = next(numbers)
        return notebook_tables.explorer(output, notebook_tables.table_name(step_id, n),
                                        f"{run_url}/tables/{step_id}/{n}")
    return (Style(explore.CSS) if notebook_tables.tables(value) else None,
            *[Div(*[view(output) for output in shown["outputs"]], title=f"Cell {shown['cell']}")
              for shown in value["outputs"]], P(*links) if links else None)
