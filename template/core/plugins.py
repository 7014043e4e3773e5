"""The plugin loader: plugins/NNN_name.py, started in number order, each given a `plugin` to register its page,
routes and tools with, and what their routes turn requests down with (Refused, require_text). plugins/README.md is
the guide.

Template-owned: `copier update` keeps this file current. server.py's Plugin adds the core's services (the
database, the store, narrate...) to the decorators here.
"""

import functools
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException

PLUGIN_FILE = re.compile(r"(\d+)_\w+\.py")
RESERVED = {"profiles", "static", "ws", "chat"}  # the core's own URLs


class Refused(HTTPException):
    "A request the app turns down, with a sentence for the person; the page shows it (server.py's `refused`)."


MAX_TEXT = 1000


def require_text(text: str, what: str) -> str:
    "The text without surrounding blanks; empty or overlong text is Refused (422) and nothing is saved."
    text = (text or "").strip()
    if not text: raise Refused(422, f"{what} cannot be empty.")
    if len(text) > MAX_TEXT: raise Refused(422, f"{what} is too long: at most {MAX_TEXT:,} characters.")
    return text


def plugin_files(folder) -> list:
    "The plugin files in start order; other names, like xx_name.py for a plugin switched off, are left alone."
    numbered = [(int(match[1]), path) for path in folder.glob("*.py") if (match := PLUGIN_FILE.fullmatch(path.name))]
    return [path for _, path in sorted(numbered)]


def on_event_loop(handler, writes: bool, db):
    """The handler as a coroutine function, so that FastHTML runs it on the event loop (it runs plain functions in
    worker threads): the database's connection is the event loop's alone (see database.py), so a plain handler
    must be quick; slow work that needs no database goes to a thread (plugins/README.md). A plain handler that
    writes (a POST, PUT, PATCH or DELETE) runs in one transaction: what it saves, the chat's notes of it
    included, is kept together, or nothing if it answers with an error."""
    if inspect.iscoroutinefunction(handler): return handler

    @functools.wraps(handler)  # FastHTML reads the parameters from the wrapped function's signature
    async def run(*args, **kwargs):
        if not writes: return handler(*args, **kwargs)
        with db.transaction(): return handler(*args, **kwargs)
    return run


class PluginBase:
    "A plugin's name, tables and URL, and the decorators of its page, routes and tools: see plugins/README.md."
    # The core's, which server.py's Plugin gives: its FastHTML app, the assistant's tools, the database, and declare.
    app: Any
    tools: Any
    db: Any
    declare: Callable[[dict], dict]

    def __init__(self, module):
        self.name, self.display_name = module.NAME, module.DISPLAY_NAME
        self.tables = self.declare(getattr(module, "TABLES", {}))
        self.view = None

    def url(self, path: str = "") -> str: return f"/{self.name}{path}"

    def route(self, path: str = "", methods=None):
        "Decorator: a route at /<name><path>, methods as in FastHTML (the function's name by default)."
        def register(handler):
            # FastHTML serves a route without methods at the verb its function is named for, else GET and POST
            verbs = {verb.lower() for verb in ([methods] if isinstance(methods, str) else methods or [handler.__name__])}
            writes = not verbs <= {"get", "head"}
            return self.app.route(self.url(path), methods=methods)(on_event_loop(handler, writes, self.db))
        return register

    def tool(self, function=None, *, card: str | None = None):
        """Decorator: offers function to the chat's assistant as a tool (assistant_tools.py, plugins/README.md).
        card makes it a write, run only on the person's click: what the card says it would do, a format string
        of the arguments. A plain function of a write runs in one transaction, as a route's does."""
        def register(function):
            self.tools.add(on_event_loop(function, card is not None, self.db), card)
            return function
        return register(function) if function else register

    def page(self, view):
        """Decorator: view() draws the plugin's main panel; the core serves it inside the page layout at /<name>.
        An async view is awaited."""
        self.view = view
        return view


def load_plugin(path, make) -> list:
    """The plugins a file makes with make(module): one; or, when it has a list APPS of objects with NAME,
    DISPLAY_NAME and setup (as a plugin file has), one each: plugins/050_notebook_apps.py serves a notebook each so."""
    spec = importlib.util.spec_from_file_location(f"plugins.{path.stem}", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugins = []
    for app in getattr(module, "APPS", [module]):
        plugins.append(plugin := make(app))
        app.setup(plugin)
        if plugin.view is None: raise RuntimeError(f"{path.name}: setup() must give a page with @plugin.page")
    return plugins


def load_plugins(folder, make, log) -> dict:
    "Every plugin of the folder's files, by name, made with make(module); a name taken twice stops the start."
    plugins = {}
    for path, plugin in [(path, plugin) for path in plugin_files(folder) for plugin in load_plugin(path, make)]:
        if plugin.name in plugins or plugin.name in RESERVED:
            raise RuntimeError(f"{path.name}: the name {plugin.name!r} is taken; give NAME another value")
        plugins[plugin.name] = plugin
        log.info("plugin %s loaded from %s", plugin.name, path.name)
    return plugins
