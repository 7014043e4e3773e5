"""The assistant's tools: what a plugin lets the chat's model read, and propose to do, in the app.

Template-owned: `copier update` keeps this file current. A fork's plugin adds a tool with `@plugin.tool` (see
plugins/README.md): a plain function whose name, docstring and typed parameters become what the model sees. The
JSON Schema of its arguments is derived from the signature (pydantic), each parameter described by its
`name: text` line under "Args:" in the docstring; the model's arguments are validated against it before the
function runs, on the event loop, for the chat's profile, as a request of that profile would be.

A read tool runs as soon as the model calls it; its result goes back to the model as compact JSON, at most
MAX_RESULT characters, and the chat shows which tool ran with which arguments, folded. A write tool never runs
so: the chat shows a card saying what it would do, with Run and Dismiss, and only the person's click (an ordinary
POST under guard.py's same-origin checks) runs it; the result goes back to the model as a note it answers. A card
expires after CARD_TTL seconds. So text that reaches the model from a crawled page, a URL list or a notebook can at
most make a card appear. There is no generic tool (SQL, shell, files, any URL): each does one thing the app's pages
do. A message has MAX_ROUNDS tool rounds at most: the reply after the last is asked for without tools.

Both backends speak their native protocol (core/chat/backends.py): Ollama's `tools`, `message.tool_calls` and
`role: "tool"` messages, the OpenAI-compatible `tools`, `tool_calls` and `tool_call_id`. Tools are offered only to a
model that says it supports them (Ollama's /api/show capabilities); one that answers 400 "does not support tools"
chats without them, and the chat says so once.
"""

import functools
import inspect
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable

from fasthtml.common import Button, Code, Details, Div, P, Small, Strong, Summary
from fastlite import NotFoundError
from starlette.exceptions import HTTPException

MAX_RESULT = 4000  # characters of a tool's result the model reads: a small model's context is small
MAX_ROUNDS = 4  # tool rounds for one message
CARD_TTL = 600  # seconds a card waits for a click
SHOWN_RESULT = 300  # characters of a result the folded line shows
WAITING = ("Shown to the person as a card with Run and Dismiss: nothing is done unless they click Run, and then "
           "you hear the result. Tell them what the card would do.")


def no_tools(model: str) -> str:
    return f"{model} cannot use the app's tools, so it answers from the conversation alone."


class ToolError(Exception):
    "A call a tool turns down, worded for the model."


class ToolsRefused(Exception):
    "The LLM server answered 400: this model does not support tools."


@dataclass
class Call:
    "A tool call as the model made it: arguments a dict (Ollama) or JSON text (OpenAI); id is OpenAI's."
    name: str
    arguments: dict | str
    id: str = ""

    @property
    def parsed(self) -> dict | str:
        "The arguments as an object, also where they came as JSON text; as they came if that is not JSON."
        if not isinstance(self.arguments, str): return self.arguments
        try: return json.loads(self.arguments or "{}")
        except ValueError: return self.arguments


def described(function) -> tuple[str, dict[str, str]]:
    "The docstring's first paragraph, and each parameter's description from its `name: text` line under Args:."
    doc = inspect.getdoc(function) or ""
    summary, _, rest = doc.partition("\n\n")
    return " ".join(summary.split()), dict(re.findall(r"^\s*(\w+):\s*(.+)$", rest.partition("Args:")[2], re.M))


@dataclass
class Tool:
    """A function the model may call. card: for a write, what it would do as the card says it: a format string of
    the arguments, or a function of them."""
    name: str
    function: Callable
    description: str
    card: str | Callable | None = None

    @classmethod
    def of(cls, function: Callable, card: str | Callable | None = None) -> "Tool":
        return cls(function.__name__, function, described(function)[0], card)

    @functools.cached_property
    def arguments(self) -> type:
        "The pydantic model of its arguments, built when tools are first offered: pydantic's import is a second."
        from pydantic import ConfigDict, Field, create_model
        about = described(self.function)[1]
        parameters = inspect.signature(self.function).parameters.items()
        fields = {name: (p.annotation, Field(... if p.default is p.empty else p.default, description=about.get(name)))
                  for name, p in parameters}
        return create_model(self.name, __config__=ConfigDict(extra="forbid"), **fields)

    def spec(self) -> dict:
        "The tool as both APIs take it."
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.arguments.model_json_schema()}}

    def validated(self, raw: dict | str) -> dict:
        "The arguments as the function takes them, checked against its signature; else a ToolError."
        from pydantic import ValidationError
        try:
            valid = (self.arguments.model_validate_json(raw or "{}") if isinstance(raw, str)
                     else self.arguments.model_validate(raw))
            return valid.model_dump()
        except ValidationError as error:
            wrong = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in error.errors())
            raise ToolError(f"Wrong arguments for {self.name}: {wrong}.") from None


def compact(result) -> str:
    "A result as the model reads it: JSON without blanks, cut at MAX_RESULT characters with a note saying so."
    text = result if isinstance(result, str) else json.dumps(result, separators=(",", ":"), ensure_ascii=False,
                                                             default=str)
    if len(text) <= MAX_RESULT: return text
    return f"{text[:MAX_RESULT]}… [cut: {len(text):,} characters in all; ask for fewer]"


@dataclass
class Card:
    "A write the model proposed, waiting for the person's click."
    tool: Tool
    arguments: dict
    profile: int
    id: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    expires: float = field(default_factory=lambda: time.monotonic() + CARD_TTL)

    @property
    def sentence(self) -> str:
        card = self.tool.card
        return card(**self.arguments) if callable(card) else card.format(**self.arguments)


class Tools:
    """The tools plugins declare, and the cards waiting for a click. current_profile() is the active profile's id;
    scope() (a coroutine function) scopes the tables to it, as before every request."""

    def __init__(self, current_profile: Callable, scope: Callable | None = None):
        self.current_profile, self.scope = current_profile, scope
        self.named: dict[str, Tool] = {}
        self.offered: list[dict] | None = None  # their specs, derived once, when the chat first offers them
        self.cards: dict[str, Card] = {}
        self.told: set[str] = set()  # the models the chat said cannot use tools

    def add(self, function: Callable, card: str | Callable | None = None) -> Tool:
        tool = Tool.of(function, card)
        if tool.name in self.named: raise RuntimeError(f"Two tools are named {tool.name!r}: rename one function.")
        self.named[tool.name] = tool
        self.offered = None
        return tool

    def specs(self) -> list[dict]:
        "The tools' specs: derived on first use, as pydantic's import and schemas are a second of the app's start."
        if self.offered is None: self.offered = [tool.spec() for tool in self.named.values()]
        return self.offered

    async def run(self, profile: int, tool: Tool, arguments: dict):
        "Runs a tool for the profile, as a request of that profile would; a refusal comes back as its sentence."
        if self.scope: await self.scope()
        if self.current_profile() != profile:
            return "Refused: another profile is active now; the person should reload the page."
        try:
            result = tool.function(**arguments)
            return compact(await result if inspect.isawaitable(result) else result)
        except HTTPException as refused:  # plugin.Refused, or a 404 for a row of another profile
            return f"Refused: {refused.detail}"
        except ToolError as error:
            return f"Refused: {error}"
        except NotFoundError as error:  # a run or row of another profile, or none at all
            return f"Refused: not found ({error})."

    async def answer(self, profile: int, call: Call) -> tuple[str, Card | None]:
        "What the model hears back from a call: a read's result, or for a write the card the chat shows."
        tool = self.named.get(call.name)
        if tool is None: return f"There is no tool {call.name!r}; the tools are {', '.join(self.named)}.", None
        try: arguments = tool.validated(call.arguments)
        except ToolError as error: return str(error), None
        if not tool.card: return await self.run(profile, tool, arguments), None
        now = time.monotonic()
        self.cards = {key: card for key, card in self.cards.items() if card.expires > now}
        card = Card(tool, arguments, profile)
        self.cards[card.id] = card
        return WAITING, card

    def take(self, card_id: str, profile: int) -> Card:
        "The card to run or dismiss, taken off: a 404 if unknown (answered, or another profile's), 410 if expired."
        card = self.cards.get(card_id)
        if card is None or card.profile != profile:
            raise HTTPException(404, "There is no such card: it was answered already, or belongs to another profile.")
        del self.cards[card_id]
        if card.expires < time.monotonic():
            raise HTTPException(410, "This card has expired, so nothing was done: ask the assistant again.")
        return card


# --- What the chat shows

def arguments_text(arguments) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def tool_line(used: dict):
    "A tool that ran: its name and arguments, its result folded under them."
    result = used["result"]
    shown = result if len(result) <= SHOWN_RESULT else f"{result[:SHOWN_RESULT]}…"
    return Details(Summary(Small("Used ", Strong(used["name"]))),
                   Code(arguments_text(used["arguments"])), Small(shown), cls="msg tool")


def card_view(card: Card):
    "The card of a write: what it would do, Run and Dismiss; each answers with what happened, in its place."
    url = f"/chat/cards/{card.id}"
    return Div(P("The assistant wants to ", Strong(card.sentence), "."),
               Div(Button("Run", hx_post=f"{url}/run"),
                   Button("Dismiss", hx_post=f"{url}/dismiss", cls="secondary")),
               id=f"card-{card.id}", cls="msg card", hx_target="this", hx_swap="outerHTML")


def card_done(card: Card, outcome: str):
    return Div(P(Small(f"{card.sentence[:1].upper()}{card.sentence[1:]}: {outcome}")), cls="msg card answered",
               id=f"card-{card.id}")


# --- The rounds of one reply

async def tool_rounds(chat, profile: int, reply, messages: list[dict], show) -> list[dict]:
    """Streams the reply (a chat.Streaming) to the messages, offering the tools to a model that takes them, and
    runs the tools it calls between rounds; show(*parts) puts what they did before the reply. The tools used, as
    the history keeps them, are returned."""
    backend, model, tools, used = chat.backend, chat.model, chat.tools, []
    offered = tools.specs() if tools and tools.named and await backend.supports_tools(model) else None
    for n in range(MAX_ROUNDS + 1):
        calls, before = [], len(reply.text)
        try: await reply.run(backend.stream(model, messages, offered if n < MAX_ROUNDS else None, calls))
        except ToolsRefused:
            backend.toolless.add(model)
            offered = None
            await reply.run(backend.stream(model, messages))
        if offered is None and tools and tools.named and model not in tools.told:
            tools.told.add(model)
            await show(Div(no_tools(model), cls="msg note"))
        if not calls or reply.stopped or reply.fault: return used
        answers = [await tools.answer(profile, call) for call in calls]
        messages += backend.tool_turns(reply.text[before:], calls, [result for result, _ in answers])
        for call, (result, card) in zip(calls, answers):
            if card: await show(card_view(card))
            else:
                used.append({"name": call.name, "arguments": call.parsed, "result": result})
                await show(tool_line(used[-1]))
    return used
