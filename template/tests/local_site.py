"""A local web site for the URL checker app's tests: pages with known answers, and pages held until the test lets
them go (to catch a check at work), which count the clients that gave up on them."""

import asyncio
import threading

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route


class LocalSite:
    def __init__(self):
        self.release = threading.Event()  # held pages answer once it is set
        self.held_now = 0  # held requests waiting
        self.dropped = 0  # held requests whose client went away
        self.app = Starlette(routes=[
            Route("/page/{n}", lambda request: HTMLResponse(f"<title>Page {request.path_params['n']}</title>")),
            Route("/old", lambda request: RedirectResponse("/page/1", 301)),
            Route("/missing", lambda request: HTMLResponse("<title>Not found</title>", 404)),
            Route("/held/{n}", self.held),
            Route("/robots.txt", lambda request: PlainTextResponse("User-agent: *\nDisallow: /private/\n")),
        ])

    async def held(self, request):
        self.held_now += 1
        try:
            while not self.release.is_set():
                if await request.is_disconnected():
                    self.dropped += 1
                    return HTMLResponse("")
                await asyncio.sleep(0.02)
        finally:
            self.held_now -= 1
        return HTMLResponse(f"<title>Held {request.path_params['n']}</title>")
