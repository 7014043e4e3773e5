"""The conversation: each reply generated in turn with the profile's others, streamed to the tabs that listen,
and kept in the history; what the app narrates; the assistant's cards answered."""

import asyncio
import json
import re
import uuid
from collections import defaultdict

from fasthtml.common import Div, to_xml

from core.assistant_tools import card_done, tool_rounds
from core.chat.backends import Backend, backend_from_env
from core.chat.history import History
from core.chat.panel import (MAX_MESSAGE_BYTES, appended, bubble, finished_reply, stop_button, streaming_reply,
                             too_long)
from core.chat.streaming import Streaming, Tab, Tabs

MAX_FRAME_BYTES = 8 * MAX_MESSAGE_BYTES  # the message JSON-escaped, with the headers htmx-ext-ws adds
# A model name as copier.yml's ollama_model question takes it, capital letters allowed (hf.co/… and OpenAI-style
# servers have them), at most 200 characters.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*(:[A-Za-z0-9._-]+)?")
MAX_MODEL_NAME = 200
COMMENT_REQUEST = "In one short line, comment on what I just did."
RESULT_REQUEST = "Tell me in a line or two what came of it."


def message_in(frame) -> str | None:
    "The `msg` of an htmx-ext-ws frame (JSON with the form's fields), or None if the frame is not one."
    try: msg = json.loads(frame)["msg"]
    except (TypeError, ValueError, KeyError, RecursionError): return None  # RecursionError: JSON nested too deep
    return msg if isinstance(msg, str) else None


def model_name(name) -> bool:
    "Whether name is a model name: what the picker may choose, and what the store may give back."
    return isinstance(name, str) and len(name) <= MAX_MODEL_NAME and MODEL_NAME.fullmatch(name) is not None


class Conversation:
    """The conversation half of Chat (routes.py), which adds its routes and its panel: the replies, generated one
    at a time per profile, and the notes of what happened."""

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
