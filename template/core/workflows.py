"""Workflows: a plugin made of ordered steps, the way a notebook runs its cells one after the other.

Template-owned: `copier update` keeps this file current. A fork writes its own workflows as plugins; the
"Workflows" section of plugins/README.md has an example:

    def setup(plugin):
        Workflow(plugin, [Step("urls", "Paste the URLs", form=url_form, submit=read_urls, show=url_list),
                          Step("check", "Check them", form=check_form, work=check_all, show=results)])

Each run of a workflow is a row of the `pipeline` table: its key, its profile, the step it is at and, as JSON, the
value each done step gave. Runs survive restarts: the page opens the run used last, at its open step. Steps chain
with htmx: the open step's form posts, and the answer is the run drawn again with the next step open. Reverting to
a done step opens it again, its last value still there for its form, and clears the steps after it.

A step with `work` runs in the background: its form starts `work(run, job)` as an asyncio task of the server and
the page stays usable. Every open tab of the profile sees its progress bar, pushed over the chat's WebSocket, and
the chat tells when it starts and ends. It can be cancelled. One cut short by a restart shows as interrupted, to
resume (with what it kept through `job.keep`) or cancel.
"""

import asyncio
import inspect
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from fasthtml.common import *
from fastlite import NotFoundError, Table
from starlette.datastructures import FormData

# The big columns last: SQLite walks a long value's overflow pages to reach the columns after it, so the run
# picker, which reads every run but its state, would read every state too.
TABLES = {"pipeline": dict(key=str, app=str, profile_id=int, step=str, created=str, used=str, job=str, state=str,
                           pk="key")}
KEY = re.compile(r"\d{8}-\d{6}-[0-9a-f]{4}")
PUSH_EVERY = 0.1  # seconds between two pushes of a progress bar: a fast job would flood the tabs otherwise
RUNNING = {}  # run key -> its Job at work in this process (asyncio itself keeps only weak references to tasks)

CSS = """
.run-bar { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin-bottom: 1.25rem; }
.run-bar select { flex: 1 1 14rem; min-width: 0; margin: 0; }  /* a line of its own on a phone, not an empty box */
.run-bar button { width: auto; margin: 0; white-space: nowrap; }
ol.steps { padding: 0; margin: 0; }
ol.steps > li.step { list-style: none; margin-bottom: .75rem; padding: .9rem 1.1rem;
                     border: 1px solid var(--pico-muted-border-color); border-radius: var(--pico-border-radius); }
.step > header { display: flex; align-items: center; gap: .65rem; }
.step > header button { margin: 0 0 0 auto; width: auto; padding: .2rem .7rem; font-size: .8rem; white-space: nowrap; }
.step-number { display: inline-grid; place-items: center; flex: none; width: 1.7rem; height: 1.7rem;
               border-radius: 50%; font-size: .85rem; font-weight: 600; background: var(--pico-muted-border-color); }
.step.done .step-number { background: var(--accent); color: #fff; }
.step.open { border-color: var(--accent); box-shadow: 0 0 0 1px var(--accent); }
.step.later > header { color: var(--pico-muted-color); }  /* not opacity: text stays legible */
.step-body { margin-top: .9rem; }
.step-body > :last-child, .step-body form > :last-child { margin-bottom: 0; }
.step-body form button { width: auto; }
.step-body table { font-size: .875rem; }
.step-body .overflow-auto:not(:last-child) { margin-bottom: var(--pico-spacing); }
.step-body .overflow-auto > table { margin-bottom: 0; }
.step-body a[role=button] { padding: .35rem .9rem; font-size: .875rem; }
.job progress { margin-bottom: .35rem; }
/* Work without a share done yet (a remote job being prepared): stripes that move, still for reduced motion. */
.job progress:indeterminate { background: repeating-linear-gradient(-45deg, var(--accent) 0 .6rem,
    color-mix(in srgb, var(--accent) 35%, var(--pico-progress-background-color)) .6rem 1.2rem);
    background-size: 3.4rem 100%; animation: job-busy .8s linear infinite; }
@keyframes job-busy { to { background-position: 3.4rem 0; } }
@media (prefers-reduced-motion: reduce) { .job progress:indeterminate { animation: none; } }
.job small { color: var(--pico-muted-color); }
.job + div { margin-bottom: .75rem; }  /* Cancel, apart from what the step shows under it (the crawl's Stop) */
.job + div button { width: auto; }
"""


@dataclass
class Step:
    """One step of a workflow. Each function gets the run (see Run) first.

    id: the step's name in URLs and in the run's state. title: its heading.
    form(run): the fields and the button of its form, shown while it is the open step; after a revert,
        run.get(id) is its last value, to fill the form with.
    show(run): how it looks once done; run[id] is its value.
    submit(run, form): the step's value from the posted form (Starlette FormData: .get(name), .getlist(name)),
        or raise plugin.Refused(422, "a sentence") and nothing is saved. Default: the form as a dict.
    work(run, job): makes it a background step. An async function, started by the form; what it returns is the
        step's value, and what submit returned is job.input. An exception fails the step with its message.
    watch(run): what a background step shows under its progress bar while at work (its results so far, say).

    form, show, watch and a plain (not async) submit run in a worker thread, as FastHTML runs plain handlers, so
    that parsing a long paste or drawing a big table holds up no other request: they work from the run and the
    form, never the app's database (the event loop's; see database.py). An async submit runs on the event loop,
    and so does work: it awaits its network calls and gives its slow computations to asyncio.to_thread.
    """
    id: str
    title: str
    form: Callable
    show: Callable
    submit: Callable | None = None
    work: Callable | None = None
    watch: Callable | None = None


@dataclass
class Run:
    "One run of a workflow, as the pipeline table keeps it. run[step id] is a done step's value."
    key: str
    app: str
    profile_id: int
    step: str  # the open step's id; "" once every step is done
    state: dict = field(default_factory=dict)  # step id -> its value
    job: dict | None = None  # the open step's background job: {input, saved, status: working or failed, error}
    created: str = ""  # empty until the first step is done: a new run is saved only then
    used: str = ""

    def __getitem__(self, step_id: str): return self.state[step_id]

    def get(self, step_id: str, default=None): return self.state.get(step_id, default)

    @classmethod
    def from_row(cls, row: dict):
        return cls(**row | {"state": json.loads(row["state"]), "job": json.loads(row["job"] or "null")})

    def row(self) -> dict:
        "The run as its row: the values as JSON (dataclasses.asdict would copy a big job's results first)."
        return vars(self) | {"state": json.dumps(self.state), "job": json.dumps(self.job) if self.job else None}


class Job:
    """A background step at work, as its work function sees it: job.input is what the step's submit returned,
    job.saved what job.keep kept before the app was restarted (empty on a first start)."""

    def __init__(self, flow, run: Run, step: Step):
        self.flow, self.run, self.step = flow, run, step
        self.input, self.saved = run.job["input"], run.job["saved"]
        self.done, self.total, self.message = 0, None, "Starting…"
        self.changed, self.cancelled, self.task = asyncio.Event(), False, None

    async def progress(self, done: int, total: int | None = None, message: str = ""):
        "Moves the progress bar of every open tab (without a total it shows work going on); the message goes under it."
        self.done, self.total, self.message = done, total, message
        self.changed.set()

    async def show_progress(self):
        "Pushes the latest progress to every open tab of the profile, at most every PUSH_EVERY seconds."
        while True:
            await self.changed.wait()
            self.changed.clear()
            await self.flow.plugin.push(self.run.profile_id, progress_bar(self.run.key, self, hx_swap_oob="true"))
            await asyncio.sleep(PUSH_EVERY)

    async def keep(self, **values):
        "Saves values for a resume after a restart: a remote job's address, say. They come back in job.saved."
        self.saved.update(values)
        self.flow.runs.update(self.run, "job")

    async def work(self, how: str):
        "Runs the step's work to its end, keeps the outcome and tells every open tab of the profile."
        flow, run, step = self.flow, self.run, self.step
        plugin, showing = flow.plugin, asyncio.create_task(self.show_progress())
        try:
            await plugin.narrate(f"{plugin.display_name}: “{step.title}” {how}.", profile_id=run.profile_id)
            value = await step.work(run, self)
        except asyncio.CancelledError:
            if not self.cancelled: raise  # the app is stopping: the run stays at work, to resume after the restart
            run.job, outcome = None, ("cancelled", ".")
        except Exception as error:
            plugin.log.warning("%s run %s: step %s failed (%s)", plugin.name, run.key, step.id, type(error).__name__)
            run.job |= {"status": "failed", "error": str(error) or type(error).__name__}
            outcome = ("failed", f": {run.job['error']}")
        else:
            run.state[step.id], run.job, run.step = value, None, flow.after(step.id)
            outcome = ("done", f". {self.message}")
        finally:
            showing.cancel()
            del RUNNING[run.key]
        # Saved with no await since the job left RUNNING: meanwhile a page would show the run as interrupted.
        if not flow.runs.update(run, "state", "job", "step"): return
        plugin.log.info("%s run %s: step %s %s", plugin.name, run.key, step.id, outcome[0])
        await plugin.push(run.profile_id, await drawn(flow.run_view, run, None, hx_swap_oob="true"),
                          Div(run_label(run, flow.steps, False), hx_swap_oob=f"innerHTML:#option-{run.key}"))
        await plugin.narrate(f"{plugin.display_name}: “{step.title}” {''.join(outcome)}", profile_id=run.profile_id)


@cache
def pipeline(db, declare) -> Table:
    """The pipeline table, declared with the core once per process (so a deleted profile's runs go with it).
    The core scopes its own handle to the active profile before each request; a background step outlives its
    request, and the active profile may change meanwhile, so the runs are read and written through a handle of
    their own, by key, with the profile checked here."""
    declare(TABLES)
    return Table(db, "pipeline")


def now() -> str: return datetime.now().isoformat()


async def drawn(draw: Callable, *args, **kwargs) -> Safe:
    "What draw(*args, **kwargs) gives, drawn as HTML in a worker thread: a big table holds up no other request."
    return await asyncio.to_thread(lambda: to_xml(draw(*args, **kwargs), indent=False))


def progress_bar(key: str, job: Job, **attrs):
    bar = Progress(value=job.done, max=job.total) if job.total else Progress()
    return Div(bar, Small(job.message), id=f"job-{key}", cls="job", aria_live="polite", **attrs)


def run_label(run: Run, steps: dict, at_work: bool) -> str:
    "When the run started, and where it is; at_work: whether a job of this process has it."
    started = datetime.fromisoformat(run.created).strftime("%-d %b %Y, %H:%M")
    if at_work: at = "at work"
    elif run.job: at = "failed" if run.job["status"] == "failed" else "interrupted"
    elif not run.step: at = "done"
    else: at = f"step {list(steps).index(run.step) + 1} of {len(steps)}"
    return f"{started} · {at}"


class Runs:
    """One workflow's runs in the pipeline table, as the active profile sees them: another profile's run, or
    another app's, is a 404 (for the plugin's own routes too)."""

    def __init__(self, plugin, first_step: str):
        self.plugin, self.first_step = plugin, first_step
        self.table = pipeline(plugin.db, plugin.declare)

    def get(self, key: str) -> Run:
        row = self.table.get(key, default=None)
        if row is None or (row["app"], row["profile_id"]) != (self.plugin.name, self.plugin.profile().id):
            raise NotFoundError(key)
        return Run.from_row(row)

    def saved(self, key: str) -> bool:
        "Whether a run (of any app or profile) is in the table under this key."
        return self.table.get(key, default=None) is not None

    def new(self, key: str | None = None) -> Run:
        key = key or f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        return Run(key, self.plugin.name, self.plugin.profile().id, step=self.first_step)

    def listed(self) -> list[Run]:
        "The active profile's runs, the one used last first, for the run picker: without their state (it may be big)."
        rows = self.table(select="key, app, profile_id, step, job, created, used", where="app = ? AND profile_id = ?",
                          where_args=[self.plugin.name, self.plugin.profile().id], order_by="used DESC")
        return [Run.from_row(row | {"state": "{}"}) for row in rows]

    def keys(self) -> set[str]:
        "The keys of this app's runs, every profile's: for files kept per run, to tell which are still wanted."
        return {row["key"] for row in self.table(select="key", where="app = ?", where_args=[self.plugin.name])}

    def last(self) -> Run:
        "The run used last, else a new one: the run the page opens."
        used_last = first(self.listed())
        return self.get(used_last.key) if used_last else self.new()

    def save(self, run: Run):
        run.created, run.used = run.created or now(), now()
        self.table.upsert(run.row())

    def update(self, run: Run, *columns: str) -> bool:
        "Writes some columns of a run; False when the run is gone (deleted with its profile, say)."
        row = run.row()
        try: self.table.update({"key": run.key} | {column: row[column] for column in columns})
        except NotFoundError: return False
        return True

    def delete(self, run: Run): self.table.delete(run.key)


class Workflow:
    """Makes the plugin a workflow of these steps: its page, its routes under /NAME/runs, its runs in the pipeline
    table. intro is drawn under the title (text or components)."""

    def __init__(self, plugin, steps: list[Step], intro=None):
        self.plugin, self.intro = plugin, intro
        self.steps = {step.id: step for step in steps}
        self.runs = Runs(plugin, steps[0].id)
        self.run = self.runs.get  # flow.run(key): a run of the active profile, else a 404
        plugin.page(self.view)
        self.routes()
        plugin.tool(self.runs_tool())

    def runs_tool(self):
        "The assistant's tool that lists this workflow's runs, named for the app."
        def runs() -> list[dict]:
            return [{"run": run.key, "state": run_label(run, self.steps, run.key in RUNNING)}
                    for run in self.runs.listed()]
        runs.__name__ = f"{self.plugin.name}_runs"
        runs.__doc__ = (f"The runs of the {self.plugin.display_name} app, the one used last first: each run's key "
                        "(what the app's other tools take) and when it started, and where it is.")
        return runs

    def last_key(self, key: str) -> str:
        "key, or when it is empty the key of the run used last (for the assistant's tools); a 404 if there is none."
        if key: return key
        if used_last := first(self.runs.listed()): return used_last.key
        raise NotFoundError("This app has no runs yet")

    async def submitted(self, key: str, step_id: str, form) -> Run:
        "The open step's form submitted (Starlette FormData); the first step of a new run saves the run."
        run, step = self.open_run_at(key, step_id)
        if not step.submit: value = dict(form)
        elif inspect.iscoroutinefunction(step.submit): value = await step.submit(run, form)
        else: value = await asyncio.to_thread(step.submit, run, form)
        run, step = self.open_run_at(key, step_id)  # again: another request may have moved it on meanwhile
        if step.work:
            run.job = {"input": value, "saved": {}, "status": "working"}
            self.runs.save(run)
            self.start(run, step)
        else:
            run.state[step_id], run.step, run.job = value, self.after(step_id), None
            self.runs.save(run)
        self.plugin.log.info("%s run %s: step %s %s", self.plugin.name, key, step_id,
                             "started" if step.work else "done")
        return run

    async def launch(self, **forms: dict) -> Run:
        """A new run whose steps are submitted in turn with these forms (step id -> fields), as the page would,
        with the same checks: for the assistant's write tools."""
        run = self.runs.new()
        for step_id, form in forms.items(): run = await self.submitted(run.key, step_id, FormData(form))
        return run

    def serve_csv(self, step_id: str, folder, missing: str):
        """Adds GET /NAME/runs/{key}/csv: the CSV whose name the step keeps as "csv" in its value, from folder. The
        name comes from the run, so nothing outside folder can be asked for; missing is the 404's sentence."""
        @self.plugin.route("/runs/{key}/csv", methods="get")
        async def download(key: str):
            saved = self.run(key).get(step_id)
            path = folder / saved["csv"] if saved else None
            if path is None or path.resolve().parent != folder.resolve() or not path.is_file():
                raise self.plugin.Refused(404, missing)
            return FileResponse(path, filename=path.name, media_type="text/csv")

    def after(self, step_id: str) -> str:
        "The id of the step after this one; '' after the last."
        ids = list(self.steps)
        return ids[ids.index(step_id) + 1] if step_id != ids[-1] else ""

    # --- background steps ---

    def start(self, run: Run, step: Step, how: str = "started"):
        job = RUNNING[run.key] = Job(self, run, step)
        job.task = asyncio.create_task(job.work(how))

    async def stop(self, key: str):
        "Cancels the run's job in this process, if it has one, and waits until its end is kept."
        if job := RUNNING.get(key):
            job.cancelled = True
            job.task.cancel()
            await asyncio.wait({job.task})

    # --- drawing ---

    async def view(self):
        return Style(CSS), Hgroup(H1(self.plugin.display_name), self.intro), await self.answer(self.runs.last())

    async def answer(self, run: Run) -> Safe:
        """The panel of the run, what every action of the workflow answers with, drawn in a thread. The runs and the
        jobs at work are read here, on the event loop, with no await since the run was: a job that ends while the
        thread draws would otherwise have its run drawn as saved at work, yet with no job, so interrupted."""
        return await drawn(self.panel, run, self.runs.listed(), dict(RUNNING))

    def panel(self, run: Run, listed: list[Run], at_work: dict):
        "The run picker, of the listed runs, and the run; at_work: run key -> Job, as RUNNING was when they were read."
        return Div(self.run_bar(run, listed, at_work), self.run_view(run, at_work.get(run.key)), id="workflow")

    def run_bar(self, run: Run, listed: list[Run], at_work: dict):
        swap = dict(hx_target="#workflow", hx_swap="outerHTML")
        options = [Option(run_label(saved, self.steps, saved.key in at_work), value=saved.key,
                          selected=saved.key == run.key, id=f"option-{saved.key}") for saved in listed]
        if not run.created: options.insert(0, Option("This run, not saved yet", value="", selected=True, disabled=True))
        return Div(Select(*options, name="run", aria_label="Run", hx_get=self.plugin.url("/runs"), **swap),
                   Button("New run", hx_get=self.plugin.url("/new"), cls="secondary", **swap),
                   Button("Delete run", hx_delete=self.plugin.url(f"/runs/{run.key}"), cls="outline secondary",
                          hx_confirm="Delete this run and the values of its steps?", **swap) if run.created else None,
                   cls="run-bar")

    def run_view(self, run: Run, job: Job | None, **attrs):
        "The run's steps; job: its Job at work, if it had one when it was read."
        ids = list(self.steps)
        at = ids.index(run.step) if run.step else len(ids)
        return Div(Ol(*[self.step_view(run, step, n, at, job) for n, step in enumerate(self.steps.values())],
                      cls="steps"), id=f"run-{run.key}", **attrs)

    def step_view(self, run: Run, step: Step, n: int, at: int, job: Job | None):
        url = self.plugin.url(f"/runs/{run.key}/steps/{step.id}")
        title = (Span(n + 1, cls="step-number"), Strong(step.title))
        if n < at:
            revert = Button("↶ Revert", hx_post=f"{url}/revert", hx_target="#workflow", hx_swap="outerHTML",
                            title="Open this step again; the steps after it are cleared", cls="outline secondary")
            return Li(Header(*title, None if job else revert), Div(step.show(run), cls="step-body"),
                      cls="step done", id=f"step-{step.id}")
        if n > at: return Li(Header(*title), cls="step later", id=f"step-{step.id}")
        return Li(Header(*title), Div(self.open_step(run, step, url, job), cls="step-body"), cls="step open",
                  id=f"step-{step.id}")

    def open_step(self, run: Run, step: Step, url: str, job: Job | None):
        swap = dict(hx_target="#workflow", hx_swap="outerHTML")
        cancel = Button("Cancel", hx_post=self.plugin.url(f"/runs/{run.key}/cancel"), cls="secondary", **swap)
        if job: return progress_bar(run.key, job), Div(cancel), step.watch and step.watch(run)
        if run.job and run.job["status"] == "working":  # kept as at work, yet no task has it: the app was stopped
            return (P("Interrupted: the app stopped while this step was at work.", cls="problem"),
                    Div(Button("Resume", hx_post=self.plugin.url(f"/runs/{run.key}/resume"), **swap), " ", cancel))
        failure = P(run.job["error"], cls="problem") if run.job else None
        # The disabled button is the form's own: a control in it that loads something (a list of choices) would
        # inherit the attribute and look for a button inside itself.
        return failure, Form(step.form(run), hx_post=url, hx_disabled_elt="find button",
                             hx_disinherit="hx-disabled-elt", **swap)

    # --- routes: each answers with the panel (self.answer) ---

    def open_run_at(self, key: str, step_id: str) -> tuple[Run, Step]:
        "The run whose open step this is, with the step: a new run for the first step; else a 404 or a 409."
        unsaved = KEY.fullmatch(key) and not self.runs.saved(key)
        run = self.runs.new(key) if unsaved and step_id == next(iter(self.steps)) else self.run(key)
        step = self.steps.get(step_id)
        if step is None: raise NotFoundError(step_id)
        if run.key in RUNNING or (run.job and run.job["status"] == "working"):
            raise self.plugin.Refused(409, "This run is at work: wait for it, or cancel it.")
        if run.step != step_id:
            raise self.plugin.Refused(409, f"“{step.title}” is not the open step any more (another tab moved on?): "
                                           "reload the page.")
        return run, step

    def routes(self):
        # Every route is async, so it runs on the event loop with the background steps: between two awaits,
        # nothing else reads or writes the runs. What a step's functions do in a worker thread is awaited, so a
        # route checks the run again after it (open_run_at).
        plugin, Refused = self.plugin, self.plugin.Refused

        @plugin.route("/new", methods="get")
        async def new_run(): return await self.answer(self.runs.new())

        @plugin.route("/runs", methods="get")
        async def open_run(run: str):
            chosen = self.run(run)
            chosen.used = now()
            self.runs.update(chosen, "used")  # the run the page opens next time
            return await self.answer(chosen)

        @plugin.route("/runs/{key}/steps/{step_id}", methods="post")
        async def submit(request, key: str, step_id: str):
            self.open_run_at(key, step_id)  # before the form is read
            return await self.answer(await self.submitted(key, step_id, await request.form()))

        @plugin.route("/runs/{key}/steps/{step_id}/revert", methods="post")
        async def revert(key: str, step_id: str):
            run = self.run(key)
            if step_id not in run.state: raise NotFoundError(step_id)
            if run.key in RUNNING: raise Refused(409, "This run is at work: cancel it first.")
            kept = list(self.steps)[:list(self.steps).index(step_id) + 1]
            run.state = {done: value for done, value in run.state.items() if done in kept}
            run.step, run.job = step_id, None
            self.runs.save(run)
            plugin.log.info("%s run %s: reverted to step %s", plugin.name, key, step_id)
            return await self.answer(run)

        @plugin.route("/runs/{key}/cancel", methods="post")
        async def cancel(key: str):
            "Stops a job at work; forgets a failed or interrupted one. The step's form shows again."
            run = self.run(key)
            if run.key in RUNNING: await self.stop(run.key)
            elif run.job:
                run.job = None
                self.runs.update(run, "job")
            return await self.answer(self.run(key))

        @plugin.route("/runs/{key}/resume", methods="post")
        async def resume(key: str):
            run = self.run(key)
            if run.key in RUNNING or not run.job or run.job["status"] != "working":
                raise Refused(409, "There is nothing to resume in this run.")
            self.start(run, self.steps[run.step], "resumed after a restart")
            return await self.answer(run)

        @plugin.route("/runs/{key}", methods="delete")
        async def delete_run(key: str):
            run = self.run(key)
            await self.stop(run.key)
            self.runs.delete(run)
            plugin.log.info("%s run %s deleted", plugin.name, key)
            return await self.answer(self.runs.last())
