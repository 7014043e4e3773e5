"""The app's log: one line per request or action, in logs/app.log with rotation.

Template-owned: `copier update` keeps this file current. Methods, paths and ids only: never form values, query
strings or headers, which may hold text a person typed or a key.
"""

import logging
import re
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path


class OneLine(logging.Formatter):
    "Escapes control characters in messages (a newline in a requested path, say), so that none can forge a line."
    CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

    def formatMessage(self, record):
        record.message = self.CONTROL.sub(lambda char: repr(char[0])[1:-1], record.message)
        return super().formatMessage(record)


def file_handler(folder: Path) -> RotatingFileHandler:
    "The handler writing app.log in folder (made if need be): 1 MB a file, five old ones kept."
    folder.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(folder / "app.log", maxBytes=1_000_000, backupCount=5, encoding="utf-8")
    handler.setFormatter(OneLine("%(asctime)s %(levelname)s %(message)s"))
    return handler


class RequestLog:
    "ASGI middleware: a log line per HTTP request once it is answered (starlette's BaseHTTPMiddleware costs far more)."

    def __init__(self, app, log: logging.Logger): self.app, self.log = app, log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http": return await self.app(scope, receive, send)
        started, status = time.perf_counter(), None

        async def send_noting_status(message):
            nonlocal status
            if message["type"] == "http.response.start": status = message["status"]
            await send(message)

        await self.app(scope, receive, send_noting_status)
        self.log.info("%s %s %s %.0fms", scope["method"], scope["path"], status, (time.perf_counter() - started) * 1000)
