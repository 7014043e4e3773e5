"""Notebook apps: every notebook in notebooks/apps/ with cells tagged as steps, served as a workflow of its own.

Each notebook is an app of the menu (APPS: the core loads one plugin per entry), read when the app starts:
notebook_apps.py reads the tags and makes the forms, notebook_kernel.py runs each step in a kernel.
"""

from types import SimpleNamespace

from fasthtml.common import *

from core import config
from core.chat import inline_html
from core.notebook_apps import NotebookApp, apps, field_value, step_form
from core import notebook_tables
from core.notebook_kernel import run_step, step_outputs
from core.workflows import Step, Workflow

FOLDER = config.ROOT / "notebooks" / "apps"


def workflow_of(app: NotebookApp, plugin):
    "The notebook's steps as a Workflow's, and the routes of the files they wrote and the tables they showed."
    def read(step):
        def submit(run, form):
            try: return {p.name: field_value(p, form) for p in step.fields}
            except ValueError as why: raise plugin.Refused(422, str(why)) from None
        return submit

    def work(step):
        async def run_it(run, job):
            earlier = {name: value for done in app.steps[:app.steps.index(step)]
                       for name, value in run[done.id]["inputs"].items()}
            value = await run_step(app, step, earlier | job.input, job)
            plugin.log.info("%s run %s: kernel ready in %.2f s", plugin.name, run.key, value["kernel_start"])
            return {"inputs": job.input} | value
        return run_it

    def step_of(step):
        return Step(step.id, step.title, form=lambda run: step_form(step, run.get(step.id, {}).get("inputs", {})),
                    submit=read(step), work=work(step),
                    show=lambda run: step_outputs(run[step.id], plugin.url(f"/runs/{run.key}"), step.id))

    flow = Workflow(plugin, [step_of(step) for step in app.steps],
                    intro=P(NotStr(inline_html(app.intro)), " ",
                            Small(f"From notebooks/apps/{app.path.name}.")))  # the notebook's words, as Markdown
    notebook_tables.routes(plugin, flow)

    @plugin.route("/runs/{key}/files/{step_id}/{n}", methods="get")
    async def download(key: str, step_id: str, n: int):
        "A file the step wrote under data/: only one its run names, so nothing else can be asked for."
        names = flow.run(key).get(step_id, {}).get("files", [])
        path = config.DATA_DIR / names[n] if 0 <= n < len(names) else None
        if path is None or not path.resolve().is_relative_to(config.DATA_DIR.resolve()) or not path.is_file():
            raise plugin.Refused(404, "This step wrote no such file, or it has been deleted since.")
        return FileResponse(path, filename=path.name)


APPS = [SimpleNamespace(NAME=app.name, DISPLAY_NAME=app.title, setup=lambda plugin, app=app: workflow_of(app, plugin))
        for app in apps(FOLDER)] if FOLDER.is_dir() else []
