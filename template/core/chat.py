"""The chat panel: a local LLM streamed over a WebSocket, one conversation per profile.

The page's panel opens /ws with htmx's WebSocket extension and sends JSON frames with a `msg` field. The server
asks the LLM with `stream: true` and forwards the reply as it arrives: what came in while the previous frame was
being sent goes out in the next one, so a local model's tokens show one by one and a fast server's in a few frames.
The finished reply is swapped in whole and marked `done`.

Replies are Markdown (headings, lists, emphasis, links, tables, fenced code), rendered by markdown-it-py and then
sanitised by nh3: LLM output is untrusted. Raw HTML shows as text, links go to http(s), mailto or relative
addresses only, and an image becomes a link to it, so a reply never makes the page load anything from another
host. While a reply streams, the text so far is rendered as it grows: at most every RENDER_EVERY seconds (less
often for a long reply, whose rendering costs more) the Markdown so far replaces what is shown, and the text that
arrived since is appended plain after it until the next rendering. Each finished reply has a Copy button (its
Markdown); the whole conversation downloads as Markdown (/chat/download).

While a reply is streaming, a new message is queued, not refused: it shows at once with an empty reply under it,
and its reply streams when the replies before it have finished. A profile has one generation at a time (replies
and narration comments alike), so tokens never interleave and each reply sees the ones before it. The Stop button
(POST /chat/stop) ends the streaming reply at once: its HTTP stream to the LLM is closed, what arrived is kept and
marked stopped, and the queued messages go on.

Replies go to the tab that asked; narration goes to every open tab of the profile. A generation stops, its HTTP
stream to the LLM is closed and nothing of it is kept, as soon as no tab is left to hear it.

The panel says whether the LLM answers and has the chosen model, when the page loads and whenever the model picker
is focused (GET /chat/status), in the words the errors use.

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
import time
import uuid
from collections import defaultdict
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from html import escape

import httpx
import nh3
import orjson
from fasthtml.common import (A, Button, Code, Div, Fieldset, Form, Label, Link, NotStr, Option, Script, Select, Small,
                             Span, Textarea, to_xml)
from markdown_it import MarkdownIt
from markdown_it.common.utils import unescapeAll
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from core.assistant_tools import Call, ToolsRefused, card_done, tool_line, tool_rounds
from core.config import OLLAMA_HOST, OLLAMA_MODEL, ROOT, SETTINGS

SYSTEM_PROMPT = ROOT / "prompts" / "system.md"  # fork-owned: the fork words its assistant there
MAX_MESSAGE_BYTES = 8 * 1024
MAX_FRAME_BYTES = 8 * MAX_MESSAGE_BYTES  # the message JSON-escaped, with the headers htmx-ext-ws adds
# A model name as copier.yml's ollama_model question takes it, capital letters allowed (hf.co/… and OpenAI-style
# servers have them), at most 200 characters.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*(:[A-Za-z0-9._-]+)?")
MAX_MODEL_NAME = 200
COMMENT_REQUEST = "In one short line, comment on what I just did."
RESULT_REQUEST = "Tell me in a line or two what came of it."
RENDER_EVERY = 0.25  # seconds between renderings of a streaming reply's Markdown, at the least
EMPTY_HINT = ("Ask the assistant anything: Enter sends, Shift+Enter starts a new line. "
              "It also hears what you do in the apps.")


class LLMError(Exception):
    "A fault of the LLM server, worded for the person in front of the chat."


def error_detail(payload) -> str | None:
    "The message of an API error: Ollama's {error: text} or OpenAI's {error: {message: text}}; None if not one."
    error = payload.get("error") if isinstance(payload, dict) else None
    return str(error.get("message", error)) if isinstance(error, dict) else error


async def line_batches(response: httpx.Response):
    """The lines of a streamed response as bytes, a batch per piece that arrived: far cheaper than httpx's
    aiter_lines, which decodes and splits every piece on its own. An uncompressed body (an LLM's stream, nearly
    always) is read raw, past httpx's decoding layers."""
    plain = response.headers.get("content-encoding", "identity") == "identity"
    rest = b""
    async for data in response.aiter_raw() if plain else response.aiter_bytes():
        *lines, rest = (rest + data).split(b"\n")
        if lines: yield lines
    if rest: yield [rest]


class Backend:
    """The HTTP plumbing both LLM APIs share. Subclasses say who they are (name, api, and the setting that points
    at them), where to ask (models_path, chat_path), how to read answers (model_names, chunk_text, whose tool calls
    go to a list) and how to answer tool calls (tool_turns)."""

    def __init__(self, url: str, default_model: str, timeout: float, headers: dict | None = None):
        self.url = url if "://" in url else f"http://{url}"  # OLLAMA_HOST is often written host:port
        self.default_model, self.timeout, self.headers = default_model, timeout, headers or {}
        self.toolless = set()  # the models that answered "does not support tools"
        self.client = None  # kept while the app runs: see kept()

    def request(self, path: str) -> dict:
        """A request's URL, headers and timeout as the backend's settings are now: a kept client outlives changes to
        them (a test shortens the timeout of a running app)."""
        return dict(url=self.url.rstrip("/") + path, headers=self.headers,
                    timeout=httpx.Timeout(self.timeout, connect=5))

    @asynccontextmanager
    async def kept(self):
        """Keeps a client while the app runs (its lifespan): its connections stay open between replies, so a reply
        waits for neither a new client (its TLS context loads the CA certificates, some 20 ms) nor a new TCP
        connection. They are closed as the app stops, on the event loop they belong to."""
        async with httpx.AsyncClient() as self.client:
            try: yield
            finally: self.client = None

    @asynccontextmanager
    async def connection(self):
        """An HTTP client for one exchange, whose faults come out as LLMErrors: the kept one while the app runs, else
        one for this exchange alone (an app served without its lifespan, as a test may)."""
        try:
            if self.client is not None: yield self.client
            else:
                async with httpx.AsyncClient() as client: yield client
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
        if response.status_code == 400 and "does not support tools" in (detail or ""): raise ToolsRefused(detail)
        detail = detail or response.text[:200]
        raise LLMError(f"{self.name} answered {response.status_code} at {response.url}: {detail}")

    async def models(self) -> list[str]:
        async with self.connection() as client:
            response = await client.get(**self.request(self.models_path))
            self.check(response)
            return self.model_names(response.json())

    async def ready(self, model: str) -> tuple[list[str], str | None]:
        "The server's models, and what stands in the way of asking it for model (None: nothing)."
        try: names = await self.models()
        except LLMError as error: return [], str(error)
        if listed(model, names): return names, None
        return names, self.missing(model, f"it has {', '.join(names)}" if names else "it has none")

    async def supports_tools(self, model: str) -> bool:
        return model not in self.toolless

    async def stream(self, model: str, messages: list[dict], tools: list[dict] | None = None, calls=None):
        """Yields the reply's text as the server sends it: the text of each batch of lines that arrived. With tools
        offered, the calls the model makes go to the list calls."""
        async with self.connection() as client:
            body = {"model": model, "messages": messages, "stream": True} | ({"tools": tools} if tools else {})
            async with client.stream("POST", **self.request(self.chat_path), json=body) as response:
                if response.is_error or "html" in response.headers.get("content-type", ""):  # a web page, not a stream
                    await response.aread()
                    self.check(response, model)
                async for lines in line_batches(response):
                    if text := "".join([self.chunk_text(line, calls) for line in lines]): yield text


def listed(model: str, names: list[str]) -> bool:
    "Ollama lists `name:latest` for a model asked for as `name`."
    return model in names or f"{model}:latest" in names


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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.capable = {}  # model -> whether /api/show lists `tools` among its capabilities

    async def supports_tools(self, model: str) -> bool:
        "Whether /api/show lists `tools` among the model's capabilities (asked once per model)."
        if model not in self.capable:
            try:
                async with self.connection() as client:
                    response = await client.post(**self.request("/api/show"), json={"model": model})
                    self.check(response, model)
                    self.capable[model] = "tools" in response.json().get("capabilities", [])
            except LLMError: return False  # the chat itself will say what is wrong
        return self.capable[model] and await super().supports_tools(model)

    def chunk_text(self, line: bytes, calls=None) -> str:
        if not line.strip(): return ""
        chunk = orjson.loads(line)  # a third the time of json.loads for a chunk
        if error := error_detail(chunk): raise LLMError(f"Ollama stopped with an error: {error}")
        message = chunk.get("message", {})
        for call in message.get("tool_calls") or []:
            calls.append(Call(call["function"]["name"], call["function"].get("arguments") or {}))
        return message.get("content", "")

    def tool_turns(self, text: str, calls: list[Call], results: list[str]) -> list[dict]:
        "The model's turn with its calls, then a `tool` message with each call's result."
        asked = [{"function": {"name": call.name, "arguments": call.arguments}} for call in calls]
        return [{"role": "assistant", "content": text, "tool_calls": asked},
                *[{"role": "tool", "content": result, "tool_name": call.name} for call, result in zip(calls, results)]]


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

    def chunk_text(self, line: bytes, calls=None) -> str:
        if not line.startswith(b"data:"): return ""  # the blank line after each event, or a comment
        data = line.removeprefix(b"data:").strip()
        if data == b"[DONE]": return ""
        chunk = orjson.loads(data)
        if error := error_detail(chunk): raise LLMError(f"{self.name} stopped with an error: {error}")
        delta = ((chunk.get("choices") or [{}])[0].get("delta")) or {}
        for part in delta.get("tool_calls") or []:  # a call's first part names it, the next ones add to its arguments
            function, index = part.get("function") or {}, part.get("index", 0)
            if index >= len(calls): calls.append(Call(function.get("name", ""), "", part.get("id", "")))
            calls[index].arguments += function.get("arguments") or ""
        return delta.get("content") or ""

    def tool_turns(self, text: str, calls: list[Call], results: list[str]) -> list[dict]:
        "The model's turn with its calls, then a `tool` message answering each by its id."
        asked = [{"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                 for call in calls]
        return [{"role": "assistant", "content": text or None, "tool_calls": asked},
                *[{"role": "tool", "tool_call_id": call.id, "content": result} for call, result in zip(calls, results)]]


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


# --- Markdown, safely: the parser never passes raw HTML through, and the sanitiser keeps only what it draws.

def image_as_link(renderer, tokens, idx, options, env):
    "An image would be loaded from wherever the LLM pointed it (a beacon, say): it shows as a link to it instead."
    image = tokens[idx]
    label = renderer.renderInlineAsText(image.children, options, env) or image.attrGet("src")
    return f'<a href="{escape(image.attrGet("src"))}">{escape(label)}</a>'


def fenced_code(renderer, tokens, idx, options, env):
    """A fenced block under its language's name, highlighted by Pygments when it knows the language (static/code.css
    colours its token classes); chat.js gives each block a Copy button."""
    fence = tokens[idx]
    language = unescapeAll(fence.info).split(maxsplit=1)[0] if fence.info.strip() else ""
    label = f'<small class="code-lang">{escape(language)}</small>' if language else ""
    return f'<div class="code">{label}<pre><code>{highlighted(fence.content, language)}</code></pre></div>\n'


def highlighted(code: str, language: str) -> str:
    "The code as HTML: Pygments' token spans for a language it knows, else the text escaped."
    try:
        return highlight(code, get_lexer_by_name(language), CODE_FORMAT) if language else escape(code)
    except ClassNotFound:
        return escape(code)


CODE_FORMAT = HtmlFormatter(nowrap=True)
MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
MARKDOWN.add_render_rule("image", image_as_link)
MARKDOWN.add_render_rule("fence", fenced_code)
SANITISER = nh3.Cleaner(
    tags={"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "s", "code", "pre", "blockquote",
          "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td", "div", "small", "span"},
    attributes={"a": {"href", "title"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}},
    allowed_classes={"div": {"code"}, "small": {"code-lang"}, "span": set(STANDARD_TYPES.values()) - {""}},
    url_schemes={"http", "https", "mailto"}, filter_style_properties={"text-align"},
    set_tag_attribute_values={"a": {"target": "_blank"}}, link_rel="noopener noreferrer")


def markdown_html(text: str) -> str:
    "Markdown from the LLM as HTML that is safe to put in the page."
    return SANITISER.clean(MARKDOWN.render(text))


def inline_html(text: str) -> str:
    "A line of Markdown (`code`, *emphasis*, links) as HTML safe to put inside a paragraph of the page."
    return SANITISER.clean(MARKDOWN.renderInline(text))


finished_html = lru_cache(maxsize=128)(markdown_html)  # every page shows the finished replies again


# --- The conversation of each profile, kept in the database

def system_prompt() -> str:
    "The fork's system prompt; the file is read again only once it changed."
    try: return prompt_text(SYSTEM_PROMPT, SYSTEM_PROMPT.stat().st_mtime_ns)
    except FileNotFoundError: return ""


@lru_cache(maxsize=1)
def prompt_text(path, mtime_ns: int) -> str: return path.read_text().strip()


class History:
    """Each profile's messages (role user, assistant, note, or tool: a tool that ran, as JSON), oldest first;
    `chat_history_limit` of them at most."""

    def __init__(self, db):
        self.table = db.t.chat_message
        self.table.create(id=int, profile_id=int, role=str, content=str, stopped=bool, pk="id", transform=True,
                          if_not_exists=True)

    def __call__(self, profile: int) -> list[dict]:
        return self.table(where="profile_id = ?", where_args=[profile], order_by="id")

    def remember(self, profile: int, role: str, content: str, stopped: bool = False):
        "Saves a message and drops the profile's oldest past the history limit."
        self.table.insert(profile_id=profile, role=role, content=content, stopped=stopped)
        self.table.delete_where(
            "profile_id = ? AND id NOT IN (SELECT id FROM chat_message WHERE profile_id = ? ORDER BY id DESC LIMIT ?)",
            [profile, profile, SETTINGS["chat_history_limit"]])

    def forget(self, profile: int):
        self.table.delete_where("profile_id = ?", [profile])

    def for_llm(self, profile: int, request: str) -> list[dict]:
        """What the LLM sees: the system prompt, the history with notes as user lines, then the request.
        Runs of one role are merged, since some chat templates insist that user and assistant alternate."""
        system = system_prompt()
        turns = [{"role": "system", "content": system}] if system else []
        lines = [(m["role"], m["content"]) for m in self(profile)] + [("user", request)]
        for role, content in lines:
            if role == "note": role, content = "user", f"Note: {content}"
            if role == "tool": role, content = "user", f"Note: you used the tool {used(content)}"
            if turns and turns[-1]["role"] == role: turns[-1]["content"] += f"\n\n{content}"
            else: turns.append({"role": role, "content": content})
        return turns

    def as_markdown(self, profile: int, title: str) -> str:
        "The conversation as a Markdown document: a section per message, notes as quotes."
        parts = [f"# {title}"]
        for m in self(profile):
            if m["role"] == "note": parts.append(f"> Note: {m['content']}")
            elif m["role"] == "tool": parts.append(f"> Used the tool {used(m['content'])}")
            else: parts += [f"## {'You' if m['role'] == 'user' else 'Assistant'}", m["content"]]
            if m["stopped"]: parts.append("*(stopped)*")
        return "\n\n".join(parts) + "\n"


def used(tool_json: str) -> str:
    "A tool that ran, as the history keeps it, in a line: its name and arguments."
    tool = json.loads(tool_json)
    return f"{tool['name']} {json.dumps(tool['arguments'], ensure_ascii=False)}"


# --- What the panel draws

def bubble(role: str, text: str = "", **attrs):
    "One message in the log; text is escaped, so whatever the user wrote shows as text. The app's own notes show code."
    return Div(*(with_code(text) if role == "error" else [text]), cls=f"msg {role}", **attrs)


def with_code(text: str) -> list:
    "The app's own message, its `backticked` commands as code: the words are written for the terminal too."
    return [Code(part) if i % 2 else part for i, part in enumerate(text.split("`"))]


def streaming_reply(rid: str):
    "An assistant reply while it streams: the Markdown rendered so far, then the text that arrived since."
    return Div(Div(cls="md", id=f"{rid}-md"), Span(cls="tail", id=f"{rid}-tail"), cls="msg assistant", id=rid)


def finished_reply(text: str, stopped: bool = False, **attrs):
    "A reply as Markdown, with a Copy button that copies its source; marked if it was stopped, hidden if empty."
    copy = Button("Copy", type="button", cls="copy outline secondary", aria_label="Copy this reply") if text else None
    return Div(Div(NotStr(finished_html(text)), cls="md") if text else None,
               Div(Small("Stopped", cls="stopped-mark") if stopped else None, copy, cls="reply-actions")
               if text or stopped else None,
               cls=f"msg assistant done{' stopped' if stopped else ''}", data_markdown=text or None, **attrs)


def logged(message: dict):
    "A message of the history, as the log shows it."
    if message["role"] == "assistant": return finished_reply(message["content"], message["stopped"])
    if message["role"] == "tool": return tool_line(json.loads(message["content"]))
    return bubble(message["role"], message["content"])


def too_long(size: int):
    return bubble("error", f"That message is {size / 1024:.1f} KB; the limit is {MAX_MESSAGE_BYTES // 1024} KB. "
                           "It was not sent.")


def appended(*parts):
    "Out-of-band: add parts to the end of the log."
    return Div(*parts, hx_swap_oob="beforeend:#chat-log")


def appended_text(rid: str, text: str) -> str:
    "Out-of-band: text added to a streaming reply. Written by hand: it is sent for every few tokens."
    return f'<span hx-swap-oob="beforeend:#{rid}-tail">{escape(text, quote=False)}</span>'


def rendered_so_far(rid: str, text: str) -> str:
    """Out-of-band: a streaming reply's text so far as Markdown, in place of what it showed. Its trailing blanks,
    which Markdown drops, stay in the plain tail, where the text that arrives next goes on."""
    blanks = text[len(text.rstrip()):]
    return (f'<div hx-swap-oob="innerHTML:#{rid}-md">{markdown_html(text).rstrip()}</div>'
            f'<span hx-swap-oob="innerHTML:#{rid}-tail">{blanks}</span>')


def stop_button(rid: str | None = None, **attrs):
    "Stop: shown while the reply rid streams to this tab, hidden otherwise."
    return Button("Stop", id="chat-stop", type="button", cls="secondary", hidden=rid is None,
                  hx_post="/chat/stop", hx_vals=json.dumps({"reply": rid}) if rid else None, hx_swap="none", **attrs)


def model_options(names: list[str], current: str):
    chosen = {current, f"{current}:latest"}
    names = names if listed(current, names) else [current, *names]
    return [Option(n, value=n, selected=n in chosen) for n in names]


def llm_status(fault: str | None, backend: Backend, model: str, **attrs):
    """Whether the LLM answers and has the model, in the words the errors use; asked again whenever the picker is
    focused, and after a model is picked."""
    return Small(*with_code(fault or f"{model} is ready ({backend.name} at {backend.url})."), id="chat-status",
                 cls="fault" if fault else "ready", role="status", hx_get="/chat/status", hx_swap="outerHTML",
                 hx_trigger="focus from:#chat-model, htmx:afterRequest from:#chat-model", **attrs)


def model_picker(names: list[str], current: str, status):
    "The labelled model select, and the LLM's status under it."
    return Div(Div(Label("Model", fr="chat-model"),
                   Select(*model_options(names, current), name="model", id="chat-model",
                          hx_post="/chat/model", hx_trigger="change", hx_swap="none"), cls="chat-model"),
               status, id="chat-picker")


def chat_bar():
    "The model picker (loaded once the page shows: asking the LLM takes a moment), Download and Clear."
    return Div(Div(Small("Asking the LLM…", id="chat-status"), id="chat-picker", hx_get="/chat/models",
                   hx_trigger="load", hx_swap="outerHTML"),
               Div(A("Download", href="/chat/download", download=True, role="button", cls="outline secondary",
                     title="The conversation as a Markdown file"),
                   Button("Clear chat", hx_post="/chat/clear", hx_target="#chat-log", hx_swap="innerHTML",
                          hx_confirm="Clear this conversation?", cls="outline secondary"), cls="chat-actions"),
               cls="chat-bar")


def message_form():
    "A multi-line message box (Enter sends, Shift+Enter adds a line, see chat.js), Send, and Stop while one streams."
    limit = f"up to {MAX_MESSAGE_BYTES // 1024} KB"
    return Form(id="chat-form", ws_send=True)(
        Fieldset(role="group")(
            Textarea(name="msg", id="chat-input", placeholder="Ask the assistant…", aria_label="Message", rows=1,
                     required=True, data_max_bytes=MAX_MESSAGE_BYTES, aria_describedby="chat-size"),
            Button("Send", id="chat-send"), stop_button()),
        Small(f"Enter sends, Shift+Enter adds a line; {limit}.", id="chat-size", data_limit=limit))


def chat_panel(messages: list[dict]):
    """The whole panel: its bar, the log of the conversation so far, the message form. Every page shows it, so what
    it shows alike is drawn once, and each message once (a third of the landing page's time went to drawing them)."""
    log = "".join(drawn_message(m["role"], m["content"], bool(m["stopped"])) for m in messages)
    return Div(id="chat", hx_ext="ws, where-shown", ws_connect="/ws")(  # where-shown: static/app.js
        panel_top(), Div(NotStr(log), id="chat-log", data_empty=EMPTY_HINT), panel_bottom())


@lru_cache(maxsize=1)
def panel_top() -> NotStr:
    return NotStr(to_xml((Link(rel="stylesheet", href="/static/chat.css"),
                          Link(rel="stylesheet", href="/static/code.css"), Script(src="/static/chat.js", defer=True),
                          chat_bar()), indent=False))


@lru_cache(maxsize=1)
def panel_bottom() -> NotStr: return NotStr(to_xml(message_form(), indent=False))


@lru_cache(maxsize=1000)  # the history of a few profiles
def drawn_message(role: str, content: str, stopped: bool) -> str:
    return to_xml(logged({"role": role, "content": content, "stopped": stopped}), indent=False)


# --- One reply as it streams

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


def keeping(lifespan, backend: Backend):
    "The app's lifespan, with the backend's client kept through it."
    @asynccontextmanager
    async def keeping_lifespan(app):
        async with backend.kept(), lifespan(app) as state: yield state
    return keeping_lifespan


class Chat:
    """The chat of one app: `panel()` draws it, `register(app)` adds its routes, `narrate()` tells it what happened.

    db: a fastlite Database (the history goes in its chat_message table); store: a MutableMapping that persists
    (the chosen model); current_profile: returns the active profile id; backend: the LLM server, from the
    environment unless given; tools: the assistant_tools.Tools the model may use."""

    def __init__(self, db, store, current_profile, backend: Backend | None = None, tools=None):
        self.store, self.current_profile, self.tools = store, current_profile, tools
        self.backend = backend or backend_from_env()
        self.history = History(db)
        self.messages = self.history.table
        self.tabs = Tabs()
        self.turns = defaultdict(asyncio.Lock)  # profile id -> one generation at a time, first come first served
        self.streams = {}  # reply id -> its Streaming, while it streams

    @property
    def model(self) -> str:
        chosen = self.store.get("chat_model")
        return chosen if model_name(chosen) else self.backend.default_model  # one saved before names were checked

    # --- the conversation ---

    async def generate(self, profile: int, listeners: set, rid: str, request: str, keep_request: bool = True):
        """Streams the reply to request into the reply `rid` of the listening tabs, in turn with the profile's
        other generations. The request is kept in the history with its reply; one that got no reply at all (the
        LLM was down, say) is not, so it is not sent again with the next message."""
        async with self.turns[profile]:
            reply = self.streams[rid] = Streaming(rid, lambda html: self.tabs.send_html(listeners, html),
                                                  first=to_xml(stop_button(rid, hx_swap_oob="true"), indent=False))
            shown = lambda *parts: self.tabs.send(listeners, Div(*parts, hx_swap_oob=f"beforebegin:#{rid}"))
            try: used = await tool_rounds(self, profile, reply, self.history.for_llm(profile, request), shown)
            finally: del self.streams[rid]
            if (text := reply.text) or used:  # kept before it is shown: a note that comes after it goes after it
                if keep_request: self.history.remember(profile, "user", request)
                for tool in used: self.history.remember(profile, "tool", json.dumps(tool))
                if text: self.history.remember(profile, "assistant", text, reply.stopped)
            after = [Div(bubble("error", reply.fault), hx_swap_oob=f"afterend:#{rid}")] if reply.fault else []
            await self.tabs.send(listeners, finished_reply(text, reply.stopped, id=rid, hx_swap_oob="true"),
                                 stop_button(hx_swap_oob="true"), *after)

    async def receive(self, tab: Tab, frame):
        if isinstance(frame, str) and len(frame) > MAX_FRAME_BYTES:  # too big to hold a message: not even parsed
            return await self.tabs.send({tab}, appended(too_long(len(frame.encode()))))
        msg = message_in(frame)
        if msg is None:
            return await self.tabs.send({tab}, appended(bubble(
                "error", 'A frame that was not an htmx-ext-ws JSON message with a "msg" field was ignored.')))
        if (size := len(msg.encode())) > MAX_MESSAGE_BYTES: return await self.tabs.send({tab}, appended(too_long(size)))
        if not msg.strip(): return
        rid = f"reply-{uuid.uuid4().hex}"
        await self.tabs.send({tab}, appended(bubble("user", msg), streaming_reply(rid)))
        listeners = {tab}
        self.tabs.launch(listeners, self.generate(tab.profile, listeners, rid, msg))

    def narrate(self, profile: int, text: str, comment: bool = False):
        """Tells the conversation what the user did ("added todo 'X'"): the note is saved at once (in the caller's
        transaction, if one is open) and the LLM sees it next time; the coroutine returned shows it in every open
        tab of the profile. comment=True also asks the LLM for a one-line comment, streamed to those tabs when the
        profile's earlier generations are done (not at all if no tab is open)."""
        self.history.remember(profile, "note", text)
        return self.announce(profile, text, comment)

    async def announce(self, profile: int, text: str, comment: bool):
        listeners, rid = set(self.tabs.of[profile]), f"reply-{uuid.uuid4().hex}"
        await self.tabs.send(listeners, appended(bubble("note", text), *([streaming_reply(rid)] if comment else [])))
        if comment and listeners:
            self.tabs.launch(listeners, self.generate(profile, listeners, rid, COMMENT_REQUEST, keep_request=False))

    async def answer_card(self, card: str, run: bool):
        """Runs the write a card proposes (Run) or drops it (Dismiss); the card shows what came of it. What a run
        gave goes to the conversation as a note, and the model answers it."""
        profile = self.current_profile()
        taken = self.tools.take(card, profile)
        if not run: return card_done(taken, "dismissed.")
        outcome = await self.tools.run(profile, taken.tool, taken.arguments)
        self.history.remember(profile, "note", f"I ran what you proposed, to {taken.sentence}: {outcome}")
        listeners, rid = set(self.tabs.of[profile]), f"reply-{uuid.uuid4().hex}"
        if listeners:
            await self.tabs.send(listeners, appended(streaming_reply(rid)))
            self.tabs.launch(listeners, self.generate(profile, listeners, rid, RESULT_REQUEST, keep_request=False))
        return card_done(taken, outcome)

    async def run_card(self, card: str): return await self.answer_card(card, run=True)

    async def dismiss_card(self, card: str): return await self.answer_card(card, run=False)

    async def push(self, profile: int, *parts):
        "Sends out-of-band fragments to every open tab of the profile: a background job's progress bar, say."
        await self.tabs.send(set(self.tabs.of[profile]), *parts)

    # --- the page and the routes ---

    def panel(self):
        "The chat panel for the page, with the log of the active profile."
        return chat_panel(self.history(self.current_profile()))

    async def connect(self, ws: WebSocket):
        """/ws: one tab's socket; frames are handled in order, replies stream from background jobs. Only the app's
        own pages get here: guard.py refuses a socket with a foreign Host or Origin before it is accepted."""
        tab = Tab(ws, self.current_profile())
        self.tabs.of[tab.profile].add(tab)  # before accepting: narration sent once the tab is open reaches it
        try:
            await ws.accept()
            while (event := await ws.receive())["type"] == "websocket.receive":
                await self.receive(tab, event.get("text"))
        finally:
            self.tabs.forget(tab)

    async def picker(self):
        names, fault = await self.backend.ready(self.model)
        return model_picker(names, self.model, llm_status(fault, self.backend, self.model))

    async def status(self):
        "The status line, and the picker's options as the LLM lists them now."
        names, fault = await self.backend.ready(self.model)
        return (llm_status(fault, self.backend, self.model),
                Select(*model_options(names, self.model), id="chat-model", hx_swap_oob="innerHTML"))

    async def choose_model(self, model: str):
        if not model_name(model):
            raise HTTPException(422, f"That is not a model name (like llama3.2 or qwen2.5:7b, at most "
                                     f"{MAX_MODEL_NAME} characters): the model was not changed.")
        self.store["chat_model"] = model

    async def stop(self, reply: str = ""):
        "Stops the reply that is streaming; one that has finished already needs nothing."
        if streaming := self.streams.get(reply): streaming.stop()

    async def clear(self):
        "Forgets the active profile's conversation; its other tabs are cleared too."
        profile = self.current_profile()
        self.history.forget(profile)
        await self.tabs.send(set(self.tabs.of[profile]), Div(id="chat-log", data_empty=EMPTY_HINT, hx_swap_oob="true"))

    async def download(self):
        "The active profile's conversation as a Markdown file."
        now = datetime.now()
        markdown = self.history.as_markdown(self.current_profile(), f"Chat with {self.model}, {now:%Y-%m-%d %H:%M}")
        return Response(markdown, media_type="text/markdown; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="chat-{now:%Y-%m-%d-%H%M}.md"'})

    def register(self, app):
        app.router.routes.append(WebSocketRoute("/ws", self.connect))
        app.router.lifespan_context = keeping(app.router.lifespan_context, self.backend)
        app.get("/chat/models")(self.picker)
        app.get("/chat/status")(self.status)
        app.get("/chat/download")(self.download)
        app.post("/chat/model")(self.choose_model)
        app.post("/chat/stop")(self.stop)
        app.post("/chat/clear")(self.clear)
        if self.tools:
            app.post("/chat/cards/{card}/run")(self.run_card)
            app.post("/chat/cards/{card}/dismiss")(self.dismiss_card)
