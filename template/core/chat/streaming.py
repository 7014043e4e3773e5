"""One reply as it streams, and the open tabs it streams to over the WebSocket."""

import asyncio
import time
from collections import defaultdict
from contextlib import aclosing
from dataclasses import dataclass

from fasthtml.common import to_xml
from starlette.websockets import WebSocket, WebSocketDisconnect

from core.chat.backends import LLMError
from core.chat.panel import appended_text, rendered_so_far

RENDER_EVERY = 0.25  # seconds between renderings of a streaming reply's Markdown, at the least


class Streaming:
    """A reply streaming into the element `rid` of the tabs that listen, through send(html); the frame `first` goes
    out while the LLM is being asked.

    What arrived while a send was in flight goes out in one frame with the next send; the Markdown so far is
    rendered in place of the plain text at most every RENDER_EVERY seconds, and ten times as seldom as a rendering
    takes, so a long reply spends at most a tenth of its time on it. stop() ends the reply at once: the read is
    cancelled, which closes the LLM's stream, and what arrived is kept."""

    def __init__(self, rid: str, send, first: str):
        self.rid, self.send, self.first = rid, send, first
        self.parts, self.pending, self.fault, self.stopped = [], [], None, False
        self.arrived, self.reading = asyncio.Event(), None

    @property
    def text(self) -> str: return "".join(self.parts)

    async def run(self, chunks):
        "Streams chunks (the backend's stream) until it ends, fails or is stopped; self.fault says what failed."
        if self.stopped: return
        self.reading = asyncio.create_task(self.read(chunks))
        forwarding = asyncio.create_task(self.forward())
        try:
            await asyncio.wait([self.reading])
        finally:  # also when the generation itself is cancelled: no tab is left
            self.reading.cancel()
            forwarding.cancel()
        if not self.reading.cancelled(): self.reading.result()  # a fault of this code is not swallowed

    def stop(self):
        self.stopped = True
        if self.reading: self.reading.cancel()

    async def read(self, chunks):
        try:
            async with aclosing(chunks):
                async for chunk in chunks:
                    self.parts.append(chunk)
                    self.pending.append(chunk)
                    self.arrived.set()
        except LLMError as error:
            self.fault = str(error)

    async def forward(self):
        "Sends what arrived since the last send, until cancelled; the finished reply carries whatever is left."
        await self.send(self.first)
        render_at = time.monotonic() + RENDER_EVERY
        while True:
            await self.arrived.wait()
            self.arrived.clear()
            if time.monotonic() < render_at: html = appended_text(self.rid, "".join(self.pending))
            else:
                started = time.monotonic()
                html = rendered_so_far(self.rid, self.text)
                render_at = time.monotonic() + max(RENDER_EVERY, 10 * (time.monotonic() - started))
            self.pending.clear()
            await self.send(html)


@dataclass(eq=False)
class Tab:
    "One open WebSocket: a browser tab showing the panel for a profile."
    ws: WebSocket
    profile: int

class Tabs:
    "The open tabs of each profile, and the generations that tabs listen to: one nobody hears any more is cancelled."

    def __init__(self):
        self.of = defaultdict(set)  # profile id -> its open tabs
        self.jobs = {}  # running generation -> the tabs still listening to it

    async def send_html(self, tabs: set, html: str):
        "Sends a frame to tabs; a tab that has gone away is forgotten."
        for tab in list(tabs):
            try: await tab.ws.send_text(html)
            except (WebSocketDisconnect, RuntimeError):
                tabs.discard(tab)
                self.forget(tab)

    async def send(self, tabs: set, *parts):
        await self.send_html(tabs, to_xml(parts, indent=False))

    def forget(self, tab: Tab):
        "A tab closed: generations nobody hears any more are cancelled, which closes their LLM stream at once."
        self.of[tab.profile].discard(tab)
        for job, listeners in list(self.jobs.items()):
            listeners.discard(tab)
            if not listeners: job.cancel()

    def launch(self, listeners: set, generation):
        job = asyncio.create_task(generation)
        self.jobs[job] = listeners
        job.add_done_callback(lambda done: self.jobs.pop(done, None))
