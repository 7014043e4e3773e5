"""The web app: FastHTML pages over SQLite, with plugin apps, profiles and a key-value store that survives restarts.

Template-owned: `copier update` keeps this file current. A fork adds apps as plugins/NNN_name.py (see
plugins/README.md) and changes settings in settings.toml; it never needs to edit this file.

Reads top to bottom: logging, the database and its tables, the key-value store, profiles, the app, plugins, the
page layout, the routes, and serving; the machinery each uses is a module of core/ named for it (logs, database,
store, plugins, layout, guard, chat). `python server.py` serves on config.HOST:config.PORT; `uvicorn server:app`
also works.
"""

import asyncio
import inspect
import logging
import os
import sys
from collections.abc import Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar

import apsw
import uvicorn

# fastlite's apswutils imports pandas and numpy whenever they are installed, only to map their scalar types to SQLite's:
# half the server's start. The server stores neither, so fastlite comes in with both hidden (a None in sys.modules
# fails their import), then they are let be: a notebook's kernel, its own process, imports them as usual.
HIDDEN = [name for name in ("pandas", "numpy") if name not in sys.modules]
sys.modules.update(dict.fromkeys(HIDDEN))
from fasthtml.common import *
from fastlite import NotFoundError
for name in HIDDEN: del sys.modules[name]
from starlette.routing import WebSocketRoute

from core import config, layout
from core.assistant_tools import Tools
from core.chat import Chat
from core.database import FAULTS, fault_message, lookup, open_database
from core.guard import Guard, refusal
from core.layout import HEAD, fault_page
from core.logs import RequestLog, file_handler
from core.plugins import PluginBase, Refused, load_plugins, require_text
from core.store import Store


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


# --- Logging: one line per request or action, in logs/ with rotation (logs.py).
log = logging.getLogger("app")
log.setLevel(logging.INFO)
log_file = file_handler(config.LOG_DIR)
log.addHandler(log_file)

# --- Database: database.py opens it (WAL, writers that wait their turn, faults worded for the person). The
# connection belongs to the event loop's thread: every handler runs there (plugins.on_event_loop).
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


# --- The key-value store (store.py): UI state that a restart must restore (the active profile, the last app...).
store = Store(store_table)


# --- Profiles: each is a separate set of plugin data. The active one is kept in the store.
# Within a request, the active profile as read (the connection's count of changes then, the profile): the page asks
# for it from the view, the menu, the chat... and it cannot change unless the request writes (a switch, a deletion).
READ_IN_REQUEST: ContextVar[tuple | None] = ContextVar("read_in_request", default=None)


def active_profile():
    "The profile the page shows: the one last chosen, else the first; the first run makes one."
    read = READ_IN_REQUEST.get()
    if read and read[0] == db.conn.total_changes(): return read[1]
    chosen = lookup(profiles, "id", store.get("active_profile", 0))
    if chosen is None:
        chosen = first(profiles(order_by="id", limit=1)) or profiles.insert(name="Default")
        store["active_profile"] = chosen.id
    if read: READ_IN_REQUEST.set((db.conn.total_changes(), chosen))
    return chosen


async def scope_to_active_profile():
    """Runs before every request: profile tables read and write the active profile's rows only (fastlite xtra).
    A database deleted under the running app is a fault the page shows, before anything is saved into it."""
    db.check_file()
    READ_IN_REQUEST.set(None)
    profile = active_profile()
    READ_IN_REQUEST.set((db.conn.total_changes(), profile))  # read once more in this request only after a write
    for table in SCOPED: table.xtra(profile_id=profile.id)


# --- The chat seam. Panels are drawn beside the app on every page; narration listeners hear what the apps do;
# pushers send fragments to the open pages of a profile. The chat (core/chat/) plugs in by adding its panel function to
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


# --- The app: its answers to refused requests and to faults of the disk, its middleware, the chat.
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
    return HTMLResponse(fault_page(text), status)


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
          middleware=[Middleware(RequestLog, log=log), Middleware(Guard)],
          exception_handlers={code: refused for code in (400, 404, 405, 409, 410, 422)}
                             | {NotFoundError: refused, OverflowError: refused}
                             | {fault: database_fault for fault in FAULTS})
app.mount("/static", StaticFiles(directory=config.ROOT / "static"))
chat = Chat(db, store, lambda: active_profile().id, tools=TOOLS)
SIDE_PANELS.append(chat.panel)
LISTENERS.append(chat.narrate)
PUSHERS.append(chat.push)


# --- Plugins: plugins/NNN_name.py, started in number order (plugins.py). plugins/README.md is the guide.
def plugin_page(plugin) -> Callable:
    "The route of the plugin's page: its view in the page layout; the app is remembered as the last one used."
    async def show():
        if store.get("last_app") != plugin.name: store["last_app"] = plugin.name  # no write on every page view
        view = plugin.view()
        if inspect.isawaitable(view): view = await view  # a view that draws in a worker thread (core/workflows/)
        return page(plugin.display_name, view, current=plugin.name)
    return show


class Plugin(PluginBase):
    "What the core gives a plugin's setup(plugin): see plugins/README.md; PluginBase has its page, route and tool."
    app, tools, db, store, log, Refused = app, TOOLS, db, store, log, Refused
    profile = staticmethod(active_profile)
    narrate, push = staticmethod(narrate), staticmethod(push)
    declare = staticmethod(declare)
    require_text = staticmethod(require_text)

    def __init__(self, module):
        super().__init__(module)
        # Before the plugin's own routes, and the chat's after all plugins: the router tries every route in turn,
        # and an app's page is what a person asks for most.
        app.get(self.url(), name=f"{self.name}_page")(plugin_page(self))


PLUGINS = load_plugins(config.ROOT / "plugins", Plugin, log)
APPS = tuple((name, plugin.display_name, plugin.url()) for name, plugin in PLUGINS.items())  # the app menu
chat.register(app)


# --- Page layout (layout.py), for the active profile: its profile menu, and its side panels unless it folded them.
def profile_menu(out_of_band: bool = False) -> Safe:
    "The header's profile switcher, for the profiles as they are now."
    return layout.profile_menu(active_profile().id, tuple(db.execute("SELECT id, name FROM profile ORDER BY id")),
                               out_of_band)


def side_folded() -> bool:
    "Whether the active profile keeps the side panels (the chat) folded away, leaving the app the page's width."
    return store.get(f"side_folded:{active_profile().id}", False)


def page(title: str, *content, current: str | None = None):
    "A whole page: header with the app menu and profile menu, the message area, the content, the side panels."
    return layout.page(title, content, apps=APPS, current=current, menu=profile_menu(),
                       panels=[panel() for panel in SIDE_PANELS], folded=bool(SIDE_PANELS) and side_folded())


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
def landing_app() -> Plugin | None:
    "The app used last, so a restart opens where the person left off; else the first."
    return PLUGINS.get(store.get("last_app")) or first(PLUGINS.values())


@app.get("/")
async def index():
    if (last := landing_app()) is None:
        return page("Apps", H1("No apps"), P("Add a plugin in plugins/ (see plugins/README.md)."))
    return Redirect(last.url())


def drawing_first(lifespan):
    """The app's lifespan, which starts by drawing the page a start opens on once, before the port opens: the first
    page a person gets is then drawn from what is kept (the layout, the todos' rows), as every later one is, where
    it took 25 times as long (BENCHMARKS.md). A view that fails is logged, and fails again when asked for."""
    @asynccontextmanager
    async def lifespan_drawing_first(app):
        if last := landing_app():
            try:
                await scope_to_active_profile()
                await plugin_page(last)()
            except Exception:
                log.exception("the page of %s could not be drawn at start", last.name)
        async with lifespan(app) as state: yield state
    return lifespan_drawing_first


app.router.lifespan_context = drawing_first(app.router.lifespan_context)


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
