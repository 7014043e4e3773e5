"""A background step at work: its asyncio task, its progress bar pushed to every open tab of the profile, and what
it keeps for a resume after a restart."""

import asyncio

from fasthtml.common import Div, Progress, Small

from core.workflows.runs import Run, run_label
from core.workflows.steps import Step, drawn

PUSH_EVERY = 0.1  # seconds between two pushes of a progress bar: a fast job would flood the tabs otherwise
RUNNING = {}  # run key -> its Job at work in this process (asyncio itself keeps only weak references to tasks)


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



def progress_bar(key: str, job: Job, **attrs):
    bar = Progress(value=job.done, max=job.total) if job.total else Progress()
    return Div(bar, Small(job.message), id=f"job-{key}", cls="job", aria_live="polite", **attrs)
