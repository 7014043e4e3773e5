"""A minimal app around the chat, for its tests: one page with the panel, htmx from static/vendor, a dict for the
store and a profile the test can switch (app.state.profile). /narrate stands in for a plugin telling the chat
what the user did. And a reader of the HTML the chat sends, for the tests to look into."""

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from fasthtml.common import FastHTML, Link, Script, Titled
from fastlite import database
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from core.chat import Chat

ROOT = Path(__file__).resolve().parent.parent


def chat_app(db_path, backend):
    db = database(db_path)
    db.execute("PRAGMA busy_timeout = 5000")
    app = FastHTML(secret_key="chat-tests", default_hdrs=False, htmlkw={"lang": "en"},  # a page as the app's
                   hdrs=(Link(rel="icon", href="/static/favicon.svg", type="image/svg+xml"),
                         Link(rel="stylesheet", href="/static/vendor/pico.min.css"),
                         Script(src="/static/vendor/htmx.min.js"), Script(src="/static/vendor/ws.js")))
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


@dataclass
class Node:
    "An element of parsed HTML: its tag, attributes and children (Nodes and strings)."
    tag: str
    attrs: dict
    children: list = field(default_factory=list)

    def get(self, name: str, default=None): return self.attrs.get(name, default)

    @property
    def classes(self) -> list[str]: return (self.get("class") or "").split()

    @property
    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text for child in self.children)

    def iter(self):
        "This element and every element inside it, in document order."
        yield self
        for child in self.children:
            if isinstance(child, Node): yield from child.iter()

    def find(self, wanted) -> "Node | None":
        return next((node for node in self.iter() if wanted(node)), None)


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def html_tree(html: str) -> Node:
    "HTML (a page or the fragments of a frame) as a tree of Nodes under a root of tag `frame`."
    root = Node("frame", {})
    open_elements = [root]

    class Builder(HTMLParser):
        def handle_starttag(self, tag, attrs):
            node = Node(tag, {name: "" if value is None else value for name, value in attrs})
            open_elements[-1].children.append(node)
            if tag not in VOID: open_elements.append(node)

        def handle_startendtag(self, tag, attrs):
            self.handle_starttag(tag, attrs)
            if tag not in VOID: open_elements.pop()

        def handle_endtag(self, tag):
            if any(node.tag == tag for node in open_elements[1:]):
                while open_elements.pop().tag != tag: pass

        def handle_data(self, data): open_elements[-1].children.append(data)

    Builder(convert_charrefs=True).feed(html)
    return root
