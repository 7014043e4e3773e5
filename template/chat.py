"""The chat panel: a local LLM streamed over a WebSocket, one conversation per profile.

The page's panel opens /ws with htmx's WebSocket extension and sends JSON frames with a `msg` field. The server
asks the LLM with `stream: true` and forwards every chunk the moment it arrives, as an out-of-band fragment
appended to that reply; the finished reply is swapped in whole and marked `done`.

While a reply is streaming, a new message is queued, not refused: it shows at once with an empty reply under it,
and its reply streams when the replies before it have finished. A profile has one generation at a time (replies
and narration comments alike), so tokens never interleave and each reply sees the ones before it.

Replies go to the tab that asked; narration goes to every open tab of the profile. A generation stops, its HTTP
stream to the LLM is closed and nothing of it is kept, as soon as no tab is left to hear it.

Environment (config.py supplies OLLAMA_HOST and OLLAMA_MODEL):
  LLM_BACKEND      `ollama` (default): Ollama's /api/chat at OLLAMA_HOST;
                   `openai`: any OpenAI-compatible /v1/chat/completions (vLLM, llama.cpp, LM Studio, hosted)
  OPENAI_BASE_URL  that server's base URL, /v1 included (default http://127.0.0.1:8000/v1)
  OPENAI_API_KEY   its API key, sent as a Bearer token (local servers usually need none)
  OPENAI_MODEL     the model to ask it for (default: OLLAMA_MODEL)
  LLM_TIMEOUT      seconds of silence from the LLM before a reply is given up (default 120)
The model picked in the panel is kept in the store (key `chat_model`) and wins over these defaults.
"""

import asyncio
import json
import os
import re
import uuid
from collections import defaultdict
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from functools import cached_property

import httpx
from fasthtml.common import Button, Div, Fieldset, Form, Input, Option, Select, Span, Style, to_xml
from starlette.exceptions import HTTPException
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from config import OLLAMA_HOST, OLLAMA_MODEL, ROOT, SETTINGS

SYSTEM_PROMPT = ROOT / "prompts" / "system.md"  # fork-owned: the fork words its assistant there
MAX_MESSAGE_BYTES = 8 * 1024
MAX_FRAME_BYTES = 8 * MAX_MESSAGE_BYTES  # the message JSON-escaped, with the headers htmx-ext-ws adds
# A model name as copier.yml's ollama_model question takes it, capital letters allowed (hf.co/… and OpenAI-style
# servers have them), at most 200 characters.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*(:[A-Za-z0-9._-]+)?")
MAX_MODEL_NAME = 200
COMMENT_REQUEST = "In one short line, comment on what I just did."


class LLMError(Exception):
    "A fault of the LLM server, worded for the person in front of the chat."


def error_detail(payload) -> str | None:
    "The message of an API error: Ollama's {error: text} or OpenAI's {error: {message: text}}; None if not one."
    error = payload.get("error") if isinstance(payload, dict) else None
    return str(error.get("message", error)) if isinstance(error, dict) else error


class Backend:
    """The HTTP plumbing both LLM APIs share. Subclasses say who they are (name, api, and the setting that points
    at them), where to ask (models_path, chat_path) and how to read answers (model_names, chunk_text)."""

    def __init__(self, url: str, default_model: str, timeout: float, headers: dict | None = None):
        self.url = url if "://" in url else f"http://{url}"  # OLLAMA_HOST is often written host:port
        self.default_model, self.timeout, self.headers = default_model, timeout, headers or {}

    @cached_property
    def tls(self):
        "Made once: making it loads the CA certificates, some 20 ms that every reply's first token would wait for."
        return httpx.create_ssl_context()

    @asynccontextmanager
    async def connection(self):
        "An HTTP client for one exchange, whose faults come out as LLMErrors."
        timeout = httpx.Timeout(self.timeout, connect=5)
        try:
            async with httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=timeout,
                                         verify=self.tls) as client:
                yield client
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise LLMError(self.unreachable()) from None
        except httpx.TimeoutException:
            raise LLMError(f"{self.name} sent nothing for {self.timeout:g} s, so the reply was given up. "
                           "Try again, or set LLM_TIMEOUT to wait longer.") from None
        except httpx.HTTPError as error:
            raise LLMError(f"The connection to {self.name} failed: {error!r}") from None
        except json.JSONDecodeError as error:
            raise LLMError(self.foreign(error.doc)) from None

    def foreign(self, sample: str) -> str:
        return f"The server at {self.url} does not speak {self.api}: it sent {sample[:80]!r}. Check {self.setting}."

    def check(self, response: httpx.Response, model: str | None = None):
        "Raises an LLMError unless the response came from the API and went well; the body must have been read."
        if "html" in response.headers.get("content-type", ""): raise LLMError(self.foreign(response.text))
        if response.is_success: return
        try: detail = error_detail(response.json())
        except ValueError: detail = None
        if response.status_code == 404 and model and detail: raise LLMError(self.missing(model, detail))
        detail = detail or response.text[:200]
        raise LLMError(f"{self.name} answered {response.status_code} at {response.url}: {detail}")

    async def models(self) -> list[str]:
        async with self.connection() as client:
            response = await client.get(self.models_path)
            self.check(response)
            return self.model_names(response.json())

    async def stream(self, model: str, messages: list[dict]):
        "Yields the reply's text chunk by chunk, as the server sends it."
        async with self.connection() as client:
            body = {"model": model, "messages": messages, "stream": True}
            async with client.stream("POST", self.chat_path, json=body) as response:
                if response.is_error or "html" in response.headers.get("content-type", ""):  # a web page, not a stream
                    await response.aread()
                    self.check(response, model)
                async for line in response.aiter_lines():
                    if chunk := self.chunk_text(line): yield chunk


def in_wsl(proc_version) -> bool:
    "Whether this Linux runs inside WSL (1 or 2): the kernel version in proc_version names Microsoft."
    try:
        with open(proc_version) as kernel: return "microsoft" in kernel.read().lower()
    except OSError: return False


class Ollama(Backend):
    "Ollama's native API: /api/tags lists models, /api/chat streams NDJSON lines until one says done."
    name, api, setting = "Ollama", "Ollama's API", "OLLAMA_HOST"
    models_path, chat_path = "/api/tags", "/api/chat"

    proc_version = "/proc/version"  # where Linux names its kernel, and WSL's names Microsoft

    def unreachable(self):
        if in_wsl(self.proc_version):
            return (f"Ollama is not answering at {self.url}. This app runs inside WSL, where an Ollama running on "
                    "Windows cannot be reached at 127.0.0.1:11434 under WSL's default NAT networking, even while it "
                    "runs. Three ways out:\n"
                    "- run Ollama inside WSL: `curl -fsSL https://ollama.com/install.sh | sh`, then "
                    f"`ollama run {self.default_model}` (and `ollama serve` if the installer could not start it);\n"
                    "- or turn on WSL's mirrored networking: `networkingMode=mirrored` under [wsl2] in "
                    "%UserProfile%\\.wslconfig, then `wsl --shutdown` in Windows;\n"
                    "- or set OLLAMA_HOST to the Windows host, http://ADDRESS:11434 with the gateway address that "
                    "`ip route show default` names, and have Ollama on Windows listen beyond loopback: set "
                    "OLLAMA_HOST=0.0.0.0 there and restart it.")
        return (f"Ollama is not running at {self.url}. Start it with `ollama serve` (get it from https://ollama.com), "
                "or set OLLAMA_HOST to where it runs.")

    def missing(self, model, detail):
        return (f"Ollama has no model {model!r} ({detail}). "
                f"Install it with `ollama pull {model}`, or pick another model.")

    def model_names(self, payload):
        return [m["name"] for m in payload.get("models", [])]

    def chunk_text(self, line):
        if not line.strip(): return ""
        chunk = json.loads(line)
        if error := error_detail(chunk): raise LLMError(f"Ollama stopped with an error: {error}")
        return chunk.get("message", {}).get("content", "")


class OpenAICompatible(Backend):
    "An OpenAI-style server: /models lists models, /chat/completions streams server-sent events until [DONE]."
    name, api, setting = "The OpenAI-compatible server", "the OpenAI API", "OPENAI_BASE_URL"
    models_path, chat_path = "/models", "/chat/completions"

    def __init__(self, url, default_model, timeout, api_key=None):
        super().__init__(url, default_model, timeout, {"Authorization": f"Bearer {api_key}"} if api_key else None)

    def unreachable(self):
        return f"No OpenAI-compatible server answers at {self.url}. Start it, or set OPENAI_BASE_URL to where it runs."

    def missing(self, model, detail):
        return f"The server at {self.url} has no model {model!r} ({detail}). Pick another model, or set OPENAI_MODEL."

    def check(self, response, model=None):
        if response.status_code in (401, 403):
            raise LLMError(f"The server at {self.url} refused the API key ({response.status_code}). "
                           "Set OPENAI_API_KEY.")
        super().check(response, model)

    def model_names(self, payload):
        return [m["id"] for m in payload.get("data", [])]

    def chunk_text(self, line):
        data = line.removeprefix("data:").strip()
        if not line.startswith("data:") or data == "[DONE]": return ""
        chunk = json.loads(data)
        if error := error_detail(chunk): raise LLMError(f"{self.name} stopped with an error: {error}")
        choices = chunk.get("choices") or [{}]
        return (choices[0].get("delta") or {}).get("content") or ""


def backend_from_env() -> Backend:
    "The LLM server the environment names (see the module docstring)."
    timeout, kind = float(os.environ.get("LLM_TIMEOUT", "120")), os.environ.get("LLM_BACKEND", "ollama")
    if kind == "ollama": return Ollama(OLLAMA_HOST, OLLAMA_MODEL, timeout)
    if kind == "openai":
        return OpenAICompatible(os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"),
                                os.environ.get("OPENAI_MODEL", OLLAMA_MODEL), timeout, os.environ.get("OPENAI_API_KEY"))
    raise ValueError(f"LLM_BACKEND must be 'ollama' or 'openai', not {kind!r}")


@dataclass(eq=False)
class Tab:
    "One open WebSocket: a browser tab showing the panel for a profile."
    ws: WebSocket
    profile: int


def message_in(frame) -> str | None:
    "The `msg` of an htmx-ext-ws frame (JSON with the form's fields), or None if the frame is not one."
    try: msg = json.loads(frame)["msg"]
    except (TypeError, ValueError, KeyError, RecursionError): return None  # RecursionError: JSON nested too deep
    return msg if isinstance(msg, str) else None


def model_name(name) -> bool:
    "Whether name is a model name: what the picker may choose, and what the store may give back."
    return isinstance(name, str) and len(name) <= MAX_MODEL_NAME and MODEL_NAME.fullmatch(name) is not None


CSS = """
#chat-log .msg { white-space: pre-wrap; overflow-wrap: anywhere; margin: .4rem 0; padding: .4rem .6rem;
                 border-radius: .4rem; }
#chat-log .user { background: color-mix(in srgb, currentColor 8%, transparent); margin-left: 2rem; }
#chat-log .note { font-style: italic; opacity: .7; }
#chat-log .error { color: #b3261e; border: 1px solid currentColor; }
#chat-log .assistant:not(.done):empty::after { content: "…"; }
#chat-log .assistant.done:empty { display: none; }
"""


def bubble(role: str, text: str = "", **attrs):
    "One message in the log; text is escaped, so whatever the user or the LLM wrote shows as text."
    return Div(text, cls=f"msg {role}", **attrs)


def reply(rid: str, text: str = "", done: bool = False):
    "An assistant reply: empty while it waits, swapped in whole (out of band) once it is done."
    if not done: return bubble("assistant", id=rid)
    return bubble("assistant done", text, id=rid, hx_swap_oob="true")


def too_long(size: int):
    return bubble("error", f"That message is {size / 1024:.1f} KB; the limit is {MAX_MESSAGE_BYTES // 1024} KB. "
                           "It was not sent.")


def appended(*parts):
    "Out-of-band: add parts to the end of the log."
    return Div(*parts, hx_swap_oob="beforeend:#chat-log")


def model_picker(names: list[str], current: str, fault: str | None = None):
    "The model select; Ollama lists `name:latest` for a model asked for as `name`."
    chosen = {current, f"{current}:latest"}
    names = names if chosen & set(names) else [current, *names]
    return Select(*[Option(n, value=n, selected=n in chosen) for n in names], name="model", id="chat-model",
                  aria_label="Model", title=fault or "The model the chat asks",
                  hx_post="/chat/model", hx_trigger="change", hx_swap="none")


class Chat:
    """The chat of one app: `panel()` draws it, `register(app)` adds its routes, `narrate()` tells it what happened.

    db: a fastlite Database (the history goes in its chat_message table); store: a MutableMapping that persists
    (the chosen model); current_profile: returns the active profile id; backend: the LLM server, from the
    environment unless given."""

    def __init__(self, db, store, current_profile, backend: Backend | None = None):
        self.store, self.current_profile = store, current_profile
        self.backend = backend or backend_from_env()
        self.messages = db.t.chat_message
        self.messages.create(id=int, profile_id=int, role=str, content=str, pk="id", if_not_exists=True)
        self.tabs = defaultdict(set)  # profile id -> its open tabs
        self.turns = defaultdict(asyncio.Lock)  # profile id -> one generation at a time, first come first served
        self.jobs = {}  # running generation -> the tabs still listening to it

    @property
    def model(self) -> str:
        chosen = self.store.get("chat_model")
        return chosen if model_name(chosen) else self.backend.default_model  # one saved before names were checked

    # --- the conversation ---

    def history(self, profile: int) -> list[dict]:
        return self.messages(where="profile_id = ?", where_args=[profile], order_by="id")

    def remember(self, profile: int, role: str, content: str):
        "Saves a message and drops the profile's oldest past the history limit."
        self.messages.insert(profile_id=profile, role=role, content=content)
        self.messages.delete_where(
            "profile_id = ? AND id NOT IN (SELECT id FROM chat_message WHERE profile_id = ? ORDER BY id DESC LIMIT ?)",
            [profile, profile, SETTINGS["chat_history_limit"]])

    def conversation(self, profile: int, request: str) -> list[dict]:
        """What the LLM sees: the system prompt, the history with notes as user lines, then the request.
        Runs of one role are merged, since some chat templates insist that user and assistant alternate."""
        system = SYSTEM_PROMPT.read_text().strip() if SYSTEM_PROMPT.exists() else ""
        turns = [{"role": "system", "content": system}] if system else []
        lines = [(m["role"], m["content"]) for m in self.history(profile)] + [("user", request)]
        for role, content in lines:
            if role == "note": role, content = "user", f"Note: {content}"
            if turns and turns[-1]["role"] == role: turns[-1]["content"] += f"\n\n{content}"
            else: turns.append({"role": role, "content": content})
        return turns

    # --- talking to tabs ---

    async def send(self, tabs: set, *parts):
        "Sends fragments to tabs; a tab that has gone away is forgotten."
        html = to_xml(parts, indent=False)
        for tab in list(tabs):
            try: await tab.ws.send_text(html)
            except (WebSocketDisconnect, RuntimeError):
                tabs.discard(tab)
                self.forget(tab)

    def forget(self, tab: Tab):
        "A tab closed: generations nobody hears any more are cancelled, which closes their LLM stream at once."
        self.tabs[tab.profile].discard(tab)
        for job, listeners in list(self.jobs.items()):
            listeners.discard(tab)
            if not listeners: job.cancel()

    def launch(self, listeners: set, generation):
        job = asyncio.create_task(generation)
        self.jobs[job] = listeners
        job.add_done_callback(lambda done: self.jobs.pop(done, None))

    async def generate(self, profile: int, listeners: set, rid: str, request: str, keep_request: bool = True):
        """Streams the reply to request into the reply `rid` of the listening tabs, in turn with the profile's
        other generations. The request is kept in the history with its reply; one that got no reply at all (the
        LLM was down, say) is not, so it is not sent again with the next message."""
        async with self.turns[profile]:
            text, fault = "", None
            try:
                async with aclosing(self.backend.stream(self.model, self.conversation(profile, request))) as chunks:
                    async for chunk in chunks:
                        text += chunk
                        await self.send(listeners, Span(chunk, hx_swap_oob=f"beforeend:#{rid}"))
            except LLMError as error:
                fault = str(error)
            if text and keep_request: self.remember(profile, "user", request)
            if text: self.remember(profile, "assistant", text)
            after = [Div(bubble("error", fault), hx_swap_oob=f"afterend:#{rid}")] if fault else []
            await self.send(listeners, reply(rid, text, done=True), *after)

    async def receive(self, tab: Tab, frame):
        if isinstance(frame, str) and len(frame) > MAX_FRAME_BYTES:  # too big to hold a message: not even parsed
            return await self.send({tab}, appended(too_long(len(frame.encode()))))
        msg = message_in(frame)
        if msg is None:
            return await self.send({tab}, appended(bubble(
                "error", 'A frame that was not an htmx-ext-ws JSON message with a "msg" field was ignored.')))
        if (size := len(msg.encode())) > MAX_MESSAGE_BYTES: return await self.send({tab}, appended(too_long(size)))
        if not msg.strip(): return
        rid = f"reply-{uuid.uuid4().hex}"
        await self.send({tab}, appended(bubble("user", msg), reply(rid)))
        listeners = {tab}
        self.launch(listeners, self.generate(tab.profile, listeners, rid, msg))

    async def narrate(self, profile: int, text: str, comment: bool = False):
        """Tells the conversation what the user did ("added todo 'X'"): every open tab of the profile shows it,
        and the LLM sees it next time. comment=True also asks the LLM for a one-line comment, streamed to those
        tabs when the profile's earlier generations are done (not at all if no tab is open)."""
        self.remember(profile, "note", text)
        listeners, rid = set(self.tabs[profile]), f"reply-{uuid.uuid4().hex}"
        await self.send(listeners, appended(bubble("note", text), *([reply(rid)] if comment else [])))
        if comment and listeners:
            self.launch(listeners, self.generate(profile, listeners, rid, COMMENT_REQUEST, keep_request=False))

    async def push(self, profile: int, *parts):
        "Sends out-of-band fragments to every open tab of the profile: a background job's progress bar, say."
        await self.send(set(self.tabs[profile]), *parts)

    # --- the page and the routes ---

    def panel(self):
        "The chat panel for the page: the log of the active profile, the message form, the model picker."
        return Div(id="chat", hx_ext="ws", ws_connect="/ws")(
            Style(CSS),
            Div(Div(hx_get="/chat/models", hx_trigger="load", hx_swap="outerHTML"),
                Button("Clear chat", hx_post="/chat/clear", hx_target="#chat-log", hx_swap="innerHTML",
                       hx_confirm="Clear this conversation?", cls="secondary"),
                cls="chat-bar"),
            Div(*[bubble(m["role"], m["content"]) for m in self.history(self.current_profile())], id="chat-log"),
            Form(id="chat-form", ws_send=True, hx_on__ws_after_send="this.reset()")(
                Fieldset(role="group")(
                    Input(name="msg", id="chat-input", placeholder="Ask the assistant…", aria_label="Message",
                          autocomplete="off", required=True),
                    Button("Send"))))

    async def connect(self, ws: WebSocket):
        """/ws: one tab's socket; frames are handled in order, replies stream from background jobs. Only the app's
        own pages get here: guard.py refuses a socket with a foreign Host or Origin before it is accepted."""
        tab = Tab(ws, self.current_profile())
        self.tabs[tab.profile].add(tab)  # before accepting: narration sent once the tab is open reaches it
        try:
            await ws.accept()
            while (event := await ws.receive())["type"] == "websocket.receive":
                await self.receive(tab, event.get("text"))
        finally:
            self.forget(tab)

    async def picker(self):
        try: names, fault = await self.backend.models(), None
        except LLMError as error: names, fault = [], str(error)
        return model_picker(names, self.model, fault)

    async def choose_model(self, model: str):
        if not model_name(model):
            raise HTTPException(422, f"That is not a model name (like llama3.2 or qwen2.5:7b, at most "
                                     f"{MAX_MODEL_NAME} characters): the model was not changed.")
        self.store["chat_model"] = model

    async def clear(self):
        "Forgets the active profile's conversation; its other tabs are cleared too."
        profile = self.current_profile()
        self.messages.delete_where("profile_id = ?", [profile])
        await self.send(set(self.tabs[profile]), Div(id="chat-log", hx_swap_oob="true"))

    def register(self, app):
        app.router.routes.append(WebSocketRoute("/ws", self.connect))
        app.get("/chat/models")(self.picker)
        app.post("/chat/model")(self.choose_model)
        app.post("/chat/clear")(self.clear)
