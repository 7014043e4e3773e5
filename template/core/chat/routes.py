"""The chat's routes (/ws and /chat/...) and its panel in the page: class Chat, which server.py plugs in."""

from contextlib import asynccontextmanager
from datetime import datetime

from fasthtml.common import Div, Select
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from core.chat.backends import Backend
from core.chat.conversation import MAX_MODEL_NAME, Conversation, model_name
from core.chat.panel import EMPTY_HINT, chat_panel, llm_status, model_options, model_picker
from core.chat.streaming import Tab


def keeping(lifespan, backend: Backend):
    "The app's lifespan, with the backend's client kept through it."
    @asynccontextmanager
    async def keeping_lifespan(app):
        async with backend.kept(), lifespan(app) as state: yield state
    return keeping_lifespan


class Chat(Conversation):
    """The chat of one app: `panel()` draws it, `register(app)` adds its routes, `narrate()` tells it what happened.

    db: a fastlite Database (the history goes in its chat_message table); store: a MutableMapping that persists
    (the chosen model); current_profile: returns the active profile id; backend: the LLM server, from the
    environment unless given; tools: the assistant_tools.Tools the model may use."""

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
