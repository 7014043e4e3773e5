"""The LLM servers the chat asks: Ollama's native API, or any OpenAI-compatible one, streamed.

Environment (config.py supplies OLLAMA_HOST and OLLAMA_MODEL):
  LLM_BACKEND      `ollama` (default): Ollama's /api/chat at OLLAMA_HOST;
                   `openai`: any OpenAI-compatible /v1/chat/completions (vLLM, llama.cpp, LM Studio, hosted)
  OPENAI_BASE_URL  that server's base URL, /v1 included (default http://127.0.0.1:8000/v1)
  OPENAI_API_KEY   its API key, sent as a Bearer token (local servers usually need none)
  OPENAI_MODEL     the model to ask it for (default: OLLAMA_MODEL)
  LLM_TIMEOUT      seconds of silence from the LLM before a reply is given up (default 120)
The model picked in the panel is kept in the store (key `chat_model`) and wins over these defaults.
"""

import json
import os
from contextlib import asynccontextmanager

import httpx
import orjson

from core.assistant_tools import Call, ToolsRefused
from core.config import OLLAMA_HOST, OLLAMA_MODEL


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
