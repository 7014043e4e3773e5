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

The package's rooms: steps.py (a step, as the plugin declares it), runs.py (the runs, in the pipeline table), jobs.py
(a background step at work), views.py (the run picker and the run's steps, drawn), routes.py (what the page posts)
and workflow.py (class Workflow, which makes a plugin a workflow).
"""

# The workflows' API: the plugins and the core's modules import these from here.
from core.workflows.jobs import Job
from core.workflows.runs import TABLES, Run
from core.workflows.steps import Step, drawn
from core.workflows.workflow import Workflow

__all__ = ["TABLES", "Job", "Run", "Step", "Workflow", "drawn"]
