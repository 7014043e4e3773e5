"""A minimal app around the chat, for its tests: one page with the panel, htmx from static/vendor, a dict for the
store and a profile the test can switch (app.state.profile). /narrate stands in for a plugin telling the chat
what the user did."""

from pathlib import Path

from fasthtml.common import FastHTML, Script, Titled
from fastlite import database
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from chat import Chat

ROOT = Path(__file__).resolve().parent.parent


def chat_app(db_path, backend):
    db = database(db_path)
    db.execute("PRAGMA busy_timeout = 5000")
    app = FastHTML(secret_key="chat-tests", default_hdrs=False,
                   hdrs=(Script(src="/static/vendor/htmx.min.js"), Script(src="/static/vendor/ws.js")))
    app.state.profile, app.state.store = 1, {}
    app.state.chat = chat = Chat(db, app.state.store, lambda: app.state.profile, backend)
    chat.register(app)
    app.router.routes.append(Mount("/static", StaticFiles(directory=ROOT / "static")))

    @app.get("/")
    def index(): return Titled("Chat", chat.panel())

    @app.post("/narrate")
    async def narrate(text: str, comment: int = 0):
        await chat.narrate(app.state.profile, text, comment=bool(comment))

    return app
