"""What the panel draws: its bar, the log of messages, the message form, and the out-of-band fragments that
change them."""

import json
from functools import lru_cache
from html import escape

from fasthtml.common import (A, Button, Code, Div, Fieldset, Form, Label, Link, NotStr, Option, Script, Select, Small,
                             Span, Textarea, to_xml)

from core.assistant_tools import tool_line
from core.chat.backends import Backend, listed
from core.chat.markdown import finished_html, markdown_html

MAX_MESSAGE_BYTES = 8 * 1024
EMPTY_HINT = ("Ask the assistant anything: Enter sends, Shift+Enter starts a new line. "
              "It also hears what you do in the apps.")


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
