"""The routes of a workflow under /NAME: a new run, a run opened, a step submitted or reverted, a job cancelled or
resumed, a run deleted. Each answers with the panel (Views.answer)."""

from fastlite import NotFoundError

from core.workflows.jobs import RUNNING
from core.workflows.runs import now


def routes(flow):
    # Every route is async, so it runs on the event loop with the background steps: between two awaits,
    # nothing else reads or writes the runs. What a step's functions do in a worker thread is awaited, so a
    # route checks the run again after it (open_run_at).
    plugin, Refused = flow.plugin, flow.plugin.Refused

    @plugin.route("/new", methods="get")
    async def new_run(): return await flow.answer(flow.runs.new())

    @plugin.route("/runs", methods="get")
    async def open_run(run: str):
        chosen = flow.run(run)
        chosen.used = now()
        flow.runs.update(chosen, "used")  # the run the page opens next time
        return await flow.answer(chosen)

    @plugin.route("/runs/{key}/steps/{step_id}", methods="post")
    async def submit(request, key: str, step_id: str):
        flow.open_run_at(key, step_id)  # before the form is read
        return await flow.answer(await flow.submitted(key, step_id, await request.form()))

    @plugin.route("/runs/{key}/steps/{step_id}/revert", methods="post")
    async def revert(key: str, step_id: str):
        run = flow.run(key)
        if step_id not in run.state: raise NotFoundError(step_id)
        if run.key in RUNNING: raise Refused(409, "This run is at work: cancel it first.")
        kept = list(flow.steps)[:list(flow.steps).index(step_id) + 1]
        run.state = {done: value for done, value in run.state.items() if done in kept}
        run.step, run.job = step_id, None
        flow.runs.save(run)
        plugin.log.info("%s run %s: reverted to step %s", plugin.name, key, step_id)
        return await flow.answer(run)

    @plugin.route("/runs/{key}/cancel", methods="post")
    async def cancel(key: str):
        "Stops a job at work; forgets a failed or interrupted one. The step's form shows again."
        run = flow.run(key)
        if run.key in RUNNING: await flow.stop(run.key)
        elif run.job:
            run.job = None
            flow.runs.update(run, "job")
        return await flow.answer(flow.run(key))

    @plugin.route("/runs/{key}/resume", methods="post")
    async def resume(key: str):
        run = flow.run(key)
        if run.key in RUNNING or not run.job or run.job["status"] != "working":
            raise Refused(409, "There is nothing to resume in this run.")
        flow.start(run, flow.steps[run.step], "resumed after a restart")
        return await flow.answer(run)

    @plugin.route("/runs/{key}", methods="delete")
    async def delete_run(key: str):
        run = flow.run(key)
        await flow.stop(run.key)
        flow.runs.delete(run)
        plugin.log.info("%s run %s deleted", plugin.name, key)
        return await flow.answer(flow.runs.last())
