"""A workflow's steps, as a plugin declares them, and drawn(): how what they draw is drawn off the event loop."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from fasthtml.common import Safe, to_xml


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



async def drawn(draw: Callable, *args, **kwargs) -> Safe:
    "What draw(*args, **kwargs) gives, drawn as HTML in a worker thread: a big table holds up no other request."
    return await asyncio.to_thread(lambda: to_xml(draw(*args, **kwargs), indent=False))
