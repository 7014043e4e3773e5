"""What a workflow draws: its page, the run picker and the run's steps, each open step's form or its job at work."""

from fasthtml.common import Button, Div, Form, H1, Header, Hgroup, Li, Ol, Option, P, Safe, Select, Span, Strong, Style

from core.workflows.jobs import RUNNING, Job, progress_bar
from core.workflows.runs import Run, run_label
from core.workflows.steps import Step, drawn

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


class Views:
    """The drawing half of Workflow (workflow.py): every action of the workflow answers with answer(run), the panel
    of the run."""

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
