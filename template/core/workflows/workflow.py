"""class Workflow: a plugin made of ordered steps, its runs submitted step by step and its background steps
started and stopped."""

import asyncio
import inspect

from fasthtml.common import FileResponse, first
from fastlite import NotFoundError
from starlette.datastructures import FormData

from core.workflows.jobs import RUNNING, Job
from core.workflows.routes import routes
from core.workflows.runs import KEY, Run, Runs, run_label
from core.workflows.steps import Step
from core.workflows.views import Views


class Workflow(Views):
    """Makes the plugin a workflow of these steps: its page, its routes under /NAME/runs, its runs in the pipeline
    table. intro is drawn under the title (text or components)."""

    def __init__(self, plugin, steps: list[Step], intro=None):
        self.plugin, self.intro = plugin, intro
        self.steps = {step.id: step for step in steps}
        self.runs = Runs(plugin, steps[0].id)
        self.run = self.runs.get  # flow.run(key): a run of the active profile, else a 404
        plugin.page(self.view)
        routes(self)
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

    # --- for the routes (routes.py), which answer with the panel (Views.answer) ---

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
