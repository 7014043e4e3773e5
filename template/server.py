"""The web app: FastHTML pages over SQLite, with plugin apps, profiles and a key-value store that survives restarts.

Template-owned: `copier update` keeps this file current. A fork adds apps as plugins/NNN_name.py (see
plugins/README.md) and changes settings in settings.toml; it never needs to edit this file.

Reads top to bottom: logging, the database and its tables, the key-value store, profiles, plugins, the page
layout, the routes, and serving. `python server.py` serves on config.HOST:config.PORT; `uvicorn server:app` also works.
"""

import asyncio
import functools
import importlib.util
import inspect
import json
import logging
import os
import re
import sys
import time
from collections.abc import MutableMapping
from dataclasses import fields
from logging.handlers import RotatingFileHandler

import apsw
import uvicorn
from fasthtml.common import *
from fastlite import NotFoundError
from starlette.routing import WebSocketRoute

from core import config
from core.assistant_tools import Tools
from core.chat import Chat
from core.database import FAULTS, fault_message, open_database
from core.guard import Guard, refusal

# --- Faults at start: a data folder the app cannot write (read-only, missing), a full disk or a locked database is
# a sentence naming the path and what to do (database.fault_message), not a traceback.
def start_fault(kind, error, trace):
    if (text := fault_message(error, config.DB_PATH)) is None: return sys.__excepthook__(kind, error, trace)
    logging.getLogger("app").error("cannot start: %s", type(error).__name__)
    print(f"{config.SETTINGS['name']} cannot start. {text}", file=sys.stderr)


sys.excepthook = start_fault


# --- Private files: another user of this machine must not read the data, the logs or the session key. What the app
# creates is its user's alone; what an older version created with wider modes is narrowed at start.
os.umask(0o077)


def keep_private(path):
    "Takes the group's and others' access to one of the app's paths away (never adds any: a read-only data/ stays so)."
    if path.exists() and path.stat().st_uid == os.getuid(): path.chmod(path.stat().st_mode & 0o700)


for path in (config.DATA_DIR, config.LOG_DIR, config.ROOT / ".sesskey"): keep_private(path)


# --- Logging: one line per request or action, in logs/ with rotation. Methods, paths and ids only: never form
# values, query strings or headers, which may hold text a person typed or a key.
class OneLine(logging.Formatter):
    "Escapes control characters in messages (a newline in a requested path, say), so that none can forge a line."
    CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

    def formatMessage(self, record):
        record.message = self.CONTROL.sub(lambda char: repr(char[0])[1:-1], record.message)
        return super().formatMessage(record)


config.LOG_DIR.mkdir(parents=True, exist_ok=True)
log = logging.getLogger("app")
log.setLevel(logging.INFO)
log_file = RotatingFileHandler(config.LOG_DIR / "app.log", maxBytes=1_000_000, backupCount=5, encoding="utf-8")
log_file.setFormatter(OneLine("%(asctime)s %(levelname)s %(message)s"))
log.addHandler(log_file)

# --- Database: database.py opens it (WAL, writers that wait their turn, faults worded for the person). The
# connection belongs to the event loop's thread: every handler runs there (see on_event_loop below).
db = open_database(config.DB_PATH)

# Every core table, declared here; plugins declare theirs in their own TABLES.
# A table with a profile_id column belongs to a profile: it only ever shows the active profile's rows.
TABLES = {
    "profile": dict(id=int, name=str, pk="id"),
    "store": dict(key=str, value=str, pk="key"),
}
SCOPED = []  # the tables that belong to a profile


def declare(tables: dict) -> dict:
    """Create each table, or bring an existing one to its declared columns: fastlite's transform adds new
    columns (and drops removed ones) and keeps every row. Rows come back as dataclasses. One transaction: another
    process starting at the same time waits, then finds the tables made."""
    made = {}
    with db.transaction():
        for name, schema in tables.items():
            table = db.t[name]
            table.create(**schema, transform=True, if_not_exists=True)
            table.dataclass()
            if "profile_id" in table.columns_dict: SCOPED.append(table)
            made[name] = table
    return made


profiles, store_table = declare(TABLES).values()


def lookup(table, column: str, value):
    """The first row whose column holds value, or None. Every request looks rows up this way, with one query:
    fastlite's table(where=...) asks sqlite_master whether the table exists first, and table[key] also reads its
    schema, on every call."""
    names = ", ".join(f"[{field.name}]" for field in fields(table.cls))
    row = db.execute(f"SELECT {names} FROM [{table.name}] WHERE [{column}] = ? LIMIT 1", [value]).fetchone()
    return None if row is None else table.cls(*row)


# --- The key-value store: UI state that a restart must restore (the active profile, the last app, the model).
class Store(MutableMapping):
    "A dict kept in a SQLite table. Values are stored as JSON, so they come back with their type."

    def __init__(self, table): self.table = table

    def __getitem__(self, key: str):
        if (row := lookup(self.table, "key", key)) is None: raise KeyError(key)
        return json.loads(row.value)

    def __setitem__(self, key: str, value): self.table.upsert(dict(key=key, value=json.dumps(value)))

    def __delitem__(self, key: str):
        try: self.table.delete(key)
        except NotFoundError: raise KeyError(key) from None

    def __iter__(self): return iter([row.key for row in self.table()])

    def __len__(self): return self.table.count


store = Store(store_table)


# --- Profiles: each is a separate set of plugin data. The active one is kept in the store.
def active_profile():
    "The profile the page shows: the one last chosen, else the first; the first run makes one."
    chosen = lookup(profiles, "id", store.get("active_profile", 0))
    if chosen is None:
        chosen = first(profiles(order_by="id", limit=1)) or profiles.insert(name="Default")
        store["active_profile"] = chosen.id
    return chosen


async def scope_to_active_profile():
    """Runs before every request: profile tables read and write the active profile's rows only (fastlite xtra).
    A database deleted under the running app is a fault the page shows, before anything is saved into it."""
    db.check_file()
    profile_id = active_profile().id
    for table in SCOPED: table.xtra(profile_id=profile_id)


class Refused(HTTPException):
    "A request the app turns down, with a sentence for the person; the page shows it (see `refused` below)."


MAX_TEXT = 1000


def on_event_loop(handler, writes: bool):
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


def require_text(text: str, what: str) -> str:
    "The text without surrounding blanks; empty or overlong text is Refused (422) and nothing is saved."
    text = (text or "").strip()
    if not text: raise Refused(422, f"{what} cannot be empty.")
    if len(text) > MAX_TEXT: raise Refused(422, f"{what} is too long: at most {MAX_TEXT:,} characters.")
    return text


# --- The chat seam. Panels are drawn beside the app on every page; narration listeners hear what the apps do;
# pushers send fragments to the open pages of a profile. chat.py plugs in by adding its panel function to
# SIDE_PANELS, its `(profile_id, text, comment)` to LISTENERS (called at once: it saves its note there and then,
# and returns the coroutine that tells the open pages) and its `async (profile_id, *fragments)` to PUSHERS.
SIDE_PANELS = []
LISTENERS = []
PUSHERS = []
# The tools plugins offer the chat's assistant (assistant_tools.py), run for the active profile, scoped as a request.
TOOLS = Tools(lambda: active_profile().id, scope_to_active_profile)


def narrate(text: str, comment: bool = False, profile_id: int | None = None) -> asyncio.Future:
    """Tells every listener (the chat) what just happened, for the active profile or the one given (a background
    job's, which may not be the active one any more); with comment=True the chat also asks the LLM for a one-line
    remark on it. The note is saved at once: inside a transaction, with the change it tells of, or not at all.
    The open pages hear it once that is committed; outside a transaction, await it to wait until they have."""
    if profile_id is None: profile_id = active_profile().id
    told = [db.once_committed(listener(profile_id, text, comment=comment)) for listener in LISTENERS]
    return asyncio.gather(*told)


async def push(profile_id: int, *fragments):
    "Swaps fragments into every open page of the profile, out of band (by their ids): a progress bar, say."
    for pusher in PUSHERS: await pusher(profile_id, *fragments)


# --- Plugins: plugins/NNN_name.py, started in number order. plugins/README.md is the guide.
PLUGIN_FILE = re.compile(r"(\d+)_\w+\.py")
RESERVED = {"profiles", "static", "ws", "chat"}  # the core's own URLs


def plugin_files(folder) -> list:
    "The plugin files in start order; other names, like xx_name.py for a plugin switched off, are left alone."
    numbered = [(int(match[1]), path) for path in folder.glob("*.py") if (match := PLUGIN_FILE.fullmatch(path.name))]
    return [path for _, path in sorted(numbered)]


class Plugin:
    "What the core gives a plugin's setup(plugin): see plugins/README.md."
    db, store, log, Refused = db, store, log, Refused
    profile = staticmethod(active_profile)
    narrate, push = staticmethod(narrate), staticmethod(push)
    declare = staticmethod(declare)
    require_text = staticmethod(require_text)

    def __init__(self, module):
        self.name, self.display_name = module.NAME, module.DISPLAY_NAME
        self.tables = declare(getattr(module, "TABLES", {}))
        self.view = None

    def url(self, path: str = "") -> str: return f"/{self.name}{path}"

    def route(self, path: str = "", methods=None):
        "Decorator: a route at /<name><path>, methods as in FastHTML (the function's name by default)."
        def register(handler):
            # FastHTML serves a route without methods at the verb its function is named for, else GET and POST
            verbs = {verb.lower() for verb in ([methods] if isinstance(methods, str) else methods or [handler.__name__])}
            writes = not verbs <= {"get", "head"}
            return app.route(self.url(path), methods=methods)(on_event_loop(handler, writes))
        return register

    def tool(self, function=None, *, card: str | None = None):
        """Decorator: offers function to the chat's assistant as a tool (assistant_tools.py, plugins/README.md).
        card makes it a write, run only on the person's click: what the card says it would do, a format string
        of the arguments. A plain function of a write runs in one transaction, as a route's does."""
        def register(function):
            TOOLS.add(on_event_loop(function, writes=card is not None), card)
            return function
        return register(function) if function else register

    def page(self, view):
        """Decorator: view() draws the plugin's main panel; the core serves it inside the page layout at /<name>.
        An async view is awaited."""
        self.view = view
        return view


def load_plugin(path) -> list[Plugin]:
    """The plugin a file makes; or, when it has a list APPS of objects with NAME, DISPLAY_NAME and setup (as a plugin
    file has), one plugin each: plugins/050_notebook_apps.py serves a notebook each so."""
    spec = importlib.util.spec_from_file_location(f"plugins.{path.stem}", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugins = []
    for app in getattr(module, "APPS", [module]):
        plugins.append(plugin := Plugin(app))
        app.setup(plugin)
        if plugin.view is None: raise RuntimeError(f"{path.name}: setup() must give a page with @plugin.page")
    return plugins


def load_plugins(folder) -> dict:
    plugins = {}
    for path, plugin in [(path, plugin) for path in plugin_files(folder) for plugin in load_plugin(path)]:
        if plugin.name in plugins or plugin.name in RESERVED:
            raise RuntimeError(f"{path.name}: the name {plugin.name!r} is taken; give NAME another value")
        plugins[plugin.name] = plugin
        log.info("plugin %s loaded from %s", plugin.name, path.name)
    return plugins


# --- The app. Every script and style is served from static/: the page asks no other host for anything.
class RequestLog:
    "ASGI middleware: a log line per HTTP request once it is answered (starlette's BaseHTTPMiddleware costs far more)."

    def __init__(self, app): self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http": return await self.app(scope, receive, send)
        started, status = time.perf_counter(), None

        async def send_noting_status(message):
            nonlocal status
            if message["type"] == "http.response.start": status = message["status"]
            await send(message)

        await self.app(scope, receive, send_noting_status)
        log.info("%s %s %s %.0fms", scope["method"], scope["path"], status, (time.perf_counter() - started) * 1000)


def refused(request, error):
    """Every refused request answers with its status and a sentence that htmx puts in the page's message area,
    whichever element asked (guard.refusal). Unknown ids, ids of another profile's rows, ids that are not numbers
    and ids too large for SQLite are all 404s: there is no such row here."""
    status = getattr(error, "status_code", 404)
    if isinstance(error, Refused) or (isinstance(error, HTTPException) and status != 404): text = error.detail
    else: text = "Not found: it may have been deleted, or belong to another profile."
    return refusal(status, text)


def database_fault(request, error):
    """A full disk, a read-only or vanished data folder, a lock held too long: the page says what to do. A write
    it stopped was rolled back, so nothing of it was saved. A page asked for in full gets a page of its own."""
    text = fault_message(error, config.DB_PATH)
    if text is None: raise error  # a fault of the code, not of the disk: a 500 with its traceback in the log
    log.warning("database fault: %s", type(error).__name__)
    status = 507 if isinstance(error, apsw.FullError) else 503
    if "hx-request" in request.headers: return refusal(status, text)
    return HTMLResponse(to_xml(Html(Head(Title(f"Cannot go on · {config.SETTINGS['name']}"), HEAD),
                                    Body(Main(H1("The app cannot go on"), P(text, cls="problem"), cls="container")),
                                    lang="en")), status)


# htmx leaves 4xx and 5xx answers unswapped by default; these carry the message to show (503 and 507: faults).
# Shown, they are answers the page expected, not errors of the page: htmx would log each one to the console.
HTMX_CONFIG = {"responseHandling": [{"code": "204", "swap": False}, {"code": "[23]..", "swap": True},
                                    {"code": "4..", "swap": True, "error": False},
                                    {"code": "50[37]", "swap": True, "error": False},
                                    {"code": "...", "swap": False, "error": True}]}
def rendered(*components) -> Safe:
    "Components drawn as HTML (a Safe string, sent as it is): for what is drawn once and shown on every page."
    return to_xml(components, indent=False)


HEAD = rendered(
    Meta(charset="utf-8"), Meta(name="viewport", content="width=device-width, initial-scale=1"),
    Meta(name="htmx-config", content=json.dumps(HTMX_CONFIG)),
    Link(rel="icon", href="/static/favicon.svg", type="image/svg+xml"),
    Link(rel="stylesheet", href="/static/vendor/pico.min.css"),
    Link(rel="stylesheet", href="/static/app.css"),
    Style(f":root {{ --accent: {config.SETTINGS['accent']}; }}"),
    Script(src="/static/vendor/htmx.min.js"), Script(src="/static/vendor/ws.js"),
    Script(src="/static/vendor/Sortable.min.js"), Script(src="/static/app.js"),
)
# DEV=1 (`./run dev`): FastHTML's live reload, a script in every page that keeps a WebSocket open to /live-reload
# and reloads the page once the server is back after a restart (see the end of this file). Off otherwise.
App = FastHTMLWithLiveReload if config.DEV else FastHTML


async def live_reload_socket(websocket):
    "FastHTML's /live-reload, ended quietly when its page goes (FastHTML's asks once more and prints a traceback)."
    await websocket.accept()
    while (await websocket.receive())["type"] != "websocket.disconnect": pass


app = App(hdrs=(HEAD,), default_hdrs=False, canonical=False, htmlkw={"lang": "en"},
          routes=[WebSocketRoute("/live-reload", live_reload_socket)] if config.DEV else None,  # before FastHTML's
          key_fname=str(config.ROOT / ".sesskey"), before=scope_to_active_profile,
          middleware=[Middleware(RequestLog), Middleware(Guard)],
          exception_handlers={code: refused for code in (400, 404, 405, 409, 410, 422)}
                             | {NotFoundError: refused, OverflowError: refused}
                             | {fault: database_fault for fault in FAULTS})
app.mount("/static", StaticFiles(directory=config.ROOT / "static"))
chat = Chat(db, store, lambda: active_profile().id, tools=TOOLS)
chat.register(app)
SIDE_PANELS.append(chat.panel)
LISTENERS.append(chat.narrate)
PUSHERS.append(chat.push)
PLUGINS = load_plugins(config.ROOT / "plugins")


# --- Page layout. What every page shows alike is drawn once, and the profile menu once per set of profiles: the
# page a person lands on is drawn on every visit, and FastHTML's components cost some 20 µs each (BENCHMARKS.md).
@functools.cache
def app_bar(current: str | None) -> Safe:
    "The brand, then every plugin app in plugin order, the current one marked."
    return rendered(Ul(Li(A(Span(cls="brand-mark"), config.SETTINGS["name"], href="/", cls="brand"))),
                    Ul(*[Li(A(plugin.display_name, href=plugin.url(), aria_current="page" if name == current else None))
                         for name, plugin in PLUGINS.items()], cls="app-menu"))


def profile_menu(out_of_band: bool = False) -> Safe:
    "The header's profile switcher: the active profile, the others to switch to, and the profiles page."
    every = tuple(db.execute("SELECT id, name FROM profile ORDER BY id"))
    return drawn_profile_menu(active_profile().id, every, out_of_band)


@functools.lru_cache(maxsize=64)
def drawn_profile_menu(active: int, every: tuple, out_of_band: bool) -> Safe:
    others = [Li(A(name, href="#", hx_post=f"/profiles/{other}/switch")) for other, name in every if other != active]
    return rendered(Details(Summary(Small("Profile"), " ", Strong(dict(every)[active])),
                         Ul(*others, Li(A("Manage profiles…", href="/profiles"))),
                         cls="dropdown", id="profile-menu", hx_swap_oob="true" if out_of_band else None))


@functools.lru_cache(maxsize=256)
def header(current: str | None, menu: Safe) -> Safe:
    # The skip link is the first thing a keyboard reaches: past the menus, straight to the app.
    return rendered(A("Skip to the content", href="#content", cls="skip-link"),
                    Header(Nav(app_bar(current), Ul(Li(menu)), cls="container", aria_label="Apps and profile")))


FOOTER = rendered(Footer(Small(f"{config.SETTINGS['name']} · {config.FLAVOUR} template {config.TEMPLATE_VERSION}"),
                         cls="container"))


def side_folded() -> bool:
    "Whether the active profile keeps the side panels (the chat) folded away, leaving the app the page's width."
    return store.get(f"side_folded:{active_profile().id}", False)


@functools.cache
def fold_button(folded: bool) -> Safe:
    # app.js folds the panels at once on a click; the request only remembers it for the profile.
    return rendered(Button("Show the chat" if folded else "Hide the chat", hx_post="/side/fold", hx_swap="none",
                           hx_vals=json.dumps({"folded": not folded}), aria_controls="side",
                           aria_expanded="false" if folded else "true", cls="fold-side secondary outline"))


def page(title: str, *content, current: str | None = None):
    "A whole page: header with the app menu and profile menu, the message area, the content, the side panels."
    folded = SIDE_PANELS and side_folded()
    side = [Aside(fold_button(folded), Div(*[panel() for panel in SIDE_PANELS], cls="side-panels"), id="side")
            ] if SIDE_PANELS else []
    return (Title(f"{title} · {config.SETTINGS['name']}"), header(current, profile_menu()),
            Main(Div(Section(Div(id="message", role="status"), *content, cls="app", id="content", tabindex="-1"),
                     *side, cls="workspace side-folded" if folded else "workspace"), cls="container"),
            FOOTER)


def profile_row(profile):
    active = profile.id == active_profile().id
    url = f"/profiles/{profile.id}"
    return Li(Span(profile.name, cls="name"),
              Mark("active") if active else Button("Switch", hx_post=f"{url}/switch", cls="outline secondary"),
              Button("Rename", hx_get=f"{url}/edit", hx_target=f"#profile-{profile.id}", hx_swap="outerHTML",
                     cls="outline secondary"),
              Button("Delete", hx_delete=url, hx_target="#profiles", hx_swap="outerHTML", cls="outline secondary",
                     hx_confirm=f"Delete the profile “{profile.name}” and all its data?"),
              id=f"profile-{profile.id}", cls="row")


def profile_list():
    return Div(Ul(*map(profile_row, profiles(order_by="id")), cls="rows"),
               Form(Input(name="name", placeholder="New profile name", aria_label="New profile name", required=True),
                    Button("Add profile"), hx_post="/profiles", hx_target="#profiles", hx_swap="outerHTML",
                    cls="add", role="group"),
               id="profiles")


def changed_profiles():
    "After a change: the profile list, and the header's profile menu swapped out of band."
    return profile_list(), profile_menu(out_of_band=True)


# --- Routes
@app.get("/")
async def index():
    "The app used last, so a restart opens where the person left off."
    last = PLUGINS.get(store.get("last_app")) or first(PLUGINS.values())
    if last is None: return page("Apps", H1("No apps"), P("Add a plugin in plugins/ (see plugins/README.md)."))
    return Redirect(last.url())


def plugin_page(plugin: Plugin):
    async def show():
        if store.get("last_app") != plugin.name: store["last_app"] = plugin.name  # no write on every page view
        view = plugin.view()
        if inspect.isawaitable(view): view = await view  # a view that draws in a worker thread (workflows.py)
        return page(plugin.display_name, view, current=plugin.name)
    return show


for plugin in PLUGINS.values(): app.get(plugin.url(), name=f"{plugin.name}_page")(plugin_page(plugin))


@app.get("/profiles")
async def profiles_page():
    return page("Profiles", Hgroup(H1("Profiles"), P("Each profile keeps its own data in every app.")),
                profile_list())


@app.post("/profiles")
async def add_profile(name: str):
    profile = profiles.insert(name=require_text(name, "A profile name"))
    log.info("profile %s added", profile.id)
    return changed_profiles()


@app.get("/profiles/{profile_id}/edit")
async def edit_profile(profile_id: int):
    profile = profiles[profile_id]
    return Li(Form(Input(name="name", value=profile.name, aria_label="Profile name", autofocus=True, required=True),
                   Button("Save"), Button("Cancel", type="button", hx_get=f"/profiles/{profile_id}",
                                          hx_target=f"#profile-{profile_id}", hx_swap="outerHTML",
                                          cls="secondary cancel"),
                   hx_put=f"/profiles/{profile_id}", hx_target="#profiles", hx_swap="outerHTML", role="group",
                   cls="editor"),
              id=f"profile-{profile_id}", cls="row")


@app.get("/profiles/{profile_id}")
async def show_profile(profile_id: int): return profile_row(profiles[profile_id])


@app.put("/profiles/{profile_id}")
async def rename_profile(profile_id: int, name: str):
    profile = profiles[profile_id]
    profile.name = require_text(name, "A profile name")
    profiles.update(profile)
    log.info("profile %s renamed", profile_id)
    return changed_profiles()


@app.post("/profiles/{profile_id}/switch")
async def switch_profile(profile_id: int):
    "Every app now shows this profile's data: the page reloads."
    store["active_profile"] = profiles[profile_id].id
    log.info("profile %s active", profile_id)
    return HtmxResponseHeaders(refresh="true")


@app.post("/side/fold")
async def fold_side(folded: bool):
    "Remember, for the active profile, whether its side panels are folded (the page has folded them already)."
    store[f"side_folded:{active_profile().id}"] = folded


@app.delete("/profiles/{profile_id}")
async def delete_profile(profile_id: int):
    profiles[profile_id]  # a 404 for an unknown id
    if profiles.count == 1: raise Refused(409, "The last profile cannot be deleted: add another one first.")
    with db.transaction():  # the profile and its rows in every app go together, or not at all
        for table in SCOPED: table.delete_where("profile_id = ?", [profile_id])
        chat.messages.delete_where("profile_id = ?", [profile_id])
        profiles.delete(profile_id)
    log.info("profile %s deleted", profile_id)
    return changed_profiles()


# What `./run dev` watches: saving any of these restarts the server, and the open pages reload when it is back.
DEV_RELOAD = ["*.py", "settings.toml", "prompts/*", "static/*", "static/*/*"]

if __name__ == "__main__":
    # Slow work runs in worker threads (see plugins/README.md), which hold the GIL for up to its switch interval
    # whenever the event loop wants it back: 1 ms instead of Python's 5 took a fifth to a third off the p99 of a page
    # asked while a 5,000-URL list was being parsed (BENCHMARKS.md).
    sys.setswitchinterval(0.001)
    if config.DEV:
        # uvicorn's reloader serves from a fresh process, which runs this file again as __main__ first (the way
        # multiprocessing starts one): "__main__:app" is that app, where "server:app" would make a second one.
        uvicorn.run("__main__:app", host=config.HOST, port=config.PORT, reload=True,
                    reload_dirs=[str(config.ROOT)], reload_includes=DEV_RELOAD, ws_per_message_deflate=False)
    else:
        # The chat's frames are small and stay on this machine: compressing them cost a tenth of a long reply's time.
        uvicorn.run(app, host=config.HOST, port=config.PORT, ws_per_message_deflate=False)
