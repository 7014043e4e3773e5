"""The chat streams the LLM's reply over /ws, keeps the conversation per profile and fails in words a person can use.

Every test runs against both backends (Ollama's API and the OpenAI-compatible one) served by the fake LLM, through
Starlette's TestClient or, for timing and many tabs, a real WebSocket client against the app under uvicorn."""

import asyncio
import html
import json
import time
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from xml.etree import ElementTree

import httpx
import pytest
import websockets
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import chat as chat_module
from chat import COMMENT_REQUEST, Ollama, OpenAICompatible, backend_from_env
from chat_app import chat_app
from conftest import free_port
from fake_ollama import running

SYSTEM = "You are the test assistant."


@pytest.fixture(params=["ollama", "openai"])
def backend(request, fake):
    if request.param == "ollama": return Ollama(fake.url, "llama3.2", timeout=5)
    fake.api_key = "sk-test"
    return OpenAICompatible(f"{fake.url}/v1", "llama3.2:latest", timeout=5, api_key="sk-test")


@pytest.fixture(autouse=True)
def system_prompt(tmp_path, monkeypatch):
    (tmp_path / "system.md").write_text(f"{SYSTEM}\n")
    monkeypatch.setattr(chat_module, "SYSTEM_PROMPT", tmp_path / "system.md")


@pytest.fixture
def app(tmp_path, backend):
    return chat_app(tmp_path / "app.db", backend)


@pytest.fixture
def app_url(app):
    "The app under uvicorn on a free port: its base URL."
    with running(app) as url:
        yield url


def frame(msg) -> str:
    "What htmx-ext-ws sends for the chat form."
    return json.dumps({"msg": msg, "HEADERS": {"HX-Request": "true", "HX-Trigger": "chat-form"}})


def shape(fragment: str) -> list:
    "A frame as (tag, attributes, text, children) trees; fasthtml writes well-formed XML fragments."
    def tree(e): return (e.tag, e.attrib, e.text, [tree(child) for child in e])
    return [tree(e) for e in ElementTree.fromstring(f"<frame>{fragment}</frame>")]


def elements(frames):
    for fragment in frames: yield from ElementTree.fromstring(f"<frame>{fragment}</frame>").iter()


def reply_id(echo: str) -> str:
    return next(e.get("id") for e in elements([echo]) if e.get("class") == "msg assistant")


def chunks(frames, rid) -> list[str]:
    return [e.text for e in elements(frames) if e.get("hx-swap-oob") == f"beforeend:#{rid}"]


def final_text(frames, rid) -> str | None:
    "The text of reply rid once it is marked done, else None."
    return next(((e.text or "") for e in elements(frames) if e.get("id") == rid and "done" in e.get("class", "")), None)


def errors(frames) -> list[str]:
    return [e.text for e in elements(frames) if e.get("class") == "msg error"]


def start_tags(page: str) -> list[tuple[str, dict]]:
    found = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs): found.append((tag, dict(attrs)))

    Parser().feed(page)
    return found


def bubbles(page: str) -> list[tuple[str, str]]:
    "The (class, text) of each message in a page's chat log."
    found = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if "msg" in dict(attrs).get("class", "").split(): found.append([dict(attrs)["class"], ""])

        def handle_data(self, data):
            if found: found[-1][1] += data

    Parser().feed(page[page.index('id="chat-log"'):page.index('id="chat-form"')])
    return [(cls, text.strip()) for cls, text in found]


def showing(cls: str):
    "A frame test: does the frame carry a message of this class?"
    return lambda fragment: any(e.get("class") == cls for e in elements([fragment]))


def user_turns(request) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


def exchange(ws, msg: str) -> tuple[str, list[str]]:
    "With TestClient: sends a message, returns its reply id and the frames up to its end."
    ws.send_text(frame(msg))
    frames = [ws.receive_text()]
    rid = reply_id(frames[0])
    while final_text(frames[-1:], rid) is None: frames.append(ws.receive_text())
    return rid, frames


class Tab:
    "A browser tab on /ws, as a real WebSocket client: sends like htmx-ext-ws, keeps every frame in order."

    def __init__(self, ws):
        self.ws, self.frames = ws, []

    async def receive_until(self, wanted, timeout: float = 5) -> str:
        "Receives frames until wanted(frame); returns that frame."
        async with asyncio.timeout(timeout):
            while True:
                self.frames.append(await self.ws.recv())
                if wanted(self.frames[-1]): return self.frames[-1]

    async def ask(self, msg: str) -> str:
        "Sends a message; returns the id of its reply, from the echo that shows the message."
        await self.ws.send(frame(msg))
        return reply_id(await self.receive_until(showing("msg user")))

    async def answer(self, rid: str) -> str:
        return final_text([await self.receive_until(lambda f: final_text([f], rid) is not None)], rid)

    async def first_chunk(self, rid: str) -> str:
        return chunks([await self.receive_until(lambda f: chunks([f], rid))], rid)[0]

    async def silent(self, seconds: float = 0.5) -> bool:
        try: self.frames.append(await asyncio.wait_for(self.ws.recv(), seconds))
        except TimeoutError: return True
        return False


@asynccontextmanager
async def tab(base: str, **options):
    async with websockets.connect(base.replace("http://", "ws://") + "/ws", **options) as ws:
        yield Tab(ws)


async def eventually(condition, timeout: float = 3) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline: return False
        await asyncio.sleep(0.02)
    return True


# --- TestClient: the frames, exactly ---

def test_reply_streams_chunk_by_chunk_in_order(app, fake):
    fake.tokens = ["Hello", ",", " wor", "ld"]
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        rid, frames = exchange(ws, "hi")
        page = client.get("/").text
    assert shape(frames[0]) == [("div", {"hx-swap-oob": "beforeend:#chat-log"}, None, [
        ("div", {"class": "msg user"}, "hi", []), ("div", {"class": "msg assistant", "id": rid}, None, [])])]
    assert [shape(f) for f in frames[1:-1]] == [
        [("span", {"hx-swap-oob": f"beforeend:#{rid}"}, token, [])] for token in fake.tokens]
    assert shape(frames[-1]) == [("div", {"class": "msg assistant done", "id": rid, "hx-swap-oob": "true"},
                                  "Hello, world", [])]
    assert bubbles(page) == [("msg user", "hi"), ("msg assistant", "Hello, world")]


def test_sends_the_system_prompt_and_a_bounded_history(app, fake, monkeypatch):
    monkeypatch.setitem(chat_module.SETTINGS, "chat_history_limit", 4)
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        for n in range(4): exchange(ws, f"m{n}")
    assert fake.requests[0]["messages"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "m0"}]
    assert fake.requests[3]["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "m1"}, {"role": "assistant", "content": "You said: m1"},
        {"role": "user", "content": "m2"}, {"role": "assistant", "content": "You said: m2"},
        {"role": "user", "content": "m3"}]
    assert [m["content"] for m in app.state.chat.history(1)] == ["m2", "You said: m2", "m3", "You said: m3"]


def test_script_in_a_message_or_reply_shows_as_text(app, fake):
    attack = "<script>alert(1)</script>"
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        rid, frames = exchange(ws, attack)
        page = client.get("/").text
    assert "<script>alert" not in "".join(frames) + page
    assert final_text(frames, rid) == f"You said: {attack}"
    assert bubbles(page) == [("msg user", attack), ("msg assistant", f"You said: {attack}")]


@pytest.mark.parametrize("bad", ["not json", '{"message": "hi"}', '{"msg": 42}', '["hi"]', b'{"msg": "hi"}'])
def test_a_malformed_frame_is_ignored_with_an_error(app, fake, bad):
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_bytes(bad) if isinstance(bad, bytes) else ws.send_text(bad)
        assert errors([ws.receive_text()]) == [
            'A frame that was not an htmx-ext-ws JSON message with a "msg" field was ignored.']
        rid, frames = exchange(ws, "still there?")
    assert final_text(frames, rid) == "You said: still there?"
    assert len(fake.requests) == 1


def test_a_message_over_8_kb_is_refused(app, fake):
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_text(frame("é" * 4097))  # 8194 bytes
        assert errors([ws.receive_text()]) == ["That message is 8.0 KB; the limit is 8 KB. It was not sent."]
        exchange(ws, "x" * 8192)
    assert [user_turns(r)[-1] for r in fake.requests] == ["x" * 8192]


def test_model_picker_lists_the_models_and_keeps_the_choice(app, fake):
    def options(page): return [(a["value"], "selected" in a) for tag, a in start_tags(page) if tag == "option"]
    with TestClient(app) as client:
        assert options(client.get("/chat/models").text) == [("llama3.2:latest", True), ("qwen2.5:7b", False)]
        assert client.post("/chat/model", data={"model": "qwen2.5:7b"}).status_code == 200
        assert app.state.store["chat_model"] == "qwen2.5:7b"
        assert options(client.get("/chat/models").text) == [("llama3.2:latest", False), ("qwen2.5:7b", True)]
        with client.websocket_connect("/ws") as ws: exchange(ws, "hi")
    assert fake.requests[-1]["model"] == "qwen2.5:7b"


def test_clear_forgets_the_conversation(app, fake):
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        exchange(ws, "one")
        exchange(ws, "two")
        assert client.post("/chat/clear").status_code == 200
        assert shape(ws.receive_text()) == [("div", {"id": "chat-log", "hx-swap-oob": "true"}, None, [])]
        assert bubbles(client.get("/").text) == []
        exchange(ws, "three")
    assert user_turns(fake.requests[-1]) == ["three"]


def test_backend_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("LLM_BACKEND", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_MODEL", "qwen2.5:7b")
    monkeypatch.setenv("LLM_TIMEOUT", "7")
    backend = backend_from_env()
    assert isinstance(backend, OpenAICompatible)
    assert (backend.url, backend.default_model, backend.timeout, backend.headers) == (
        "http://127.0.0.1:9/v1", "qwen2.5:7b", 7.0, {"Authorization": "Bearer sk-env"})
    monkeypatch.delenv("LLM_BACKEND")
    assert isinstance(backend_from_env(), Ollama)
    monkeypatch.setenv("LLM_BACKEND", "llamafile")
    with pytest.raises(ValueError, match="LLM_BACKEND must be 'ollama' or 'openai'"):
        backend_from_env()


# --- a real client against the app under uvicorn ---

@pytest.mark.asyncio
async def test_chunks_arrive_while_the_llm_is_still_writing(app_url, fake):
    fake.tokens, fake.delay = ["One", " two", " three", " four"], 0.2
    async with tab(app_url) as t:
        rid = await t.ask("count")
        started = time.monotonic()
        assert await t.first_chunk(rid) == "One"
        first = time.monotonic() - started
        assert fake.finished == 0  # forwarded before the LLM had written the rest
        assert await t.answer(rid) == "One two three four"
        assert time.monotonic() - started > first + 0.5
    assert chunks(t.frames, rid) == fake.tokens


@pytest.mark.asyncio
async def test_history_survives_a_restart(tmp_path, backend, fake):
    with running(chat_app(tmp_path / "app.db", backend)) as url:
        async with tab(url) as t:
            await t.answer(await t.ask("remember the milk"))
    with running(chat_app(tmp_path / "app.db", backend)) as url:
        assert bubbles(httpx.get(url).text) == [
            ("msg user", "remember the milk"), ("msg assistant", "You said: remember the milk")]
        async with tab(url) as t:
            await t.answer(await t.ask("what did I say?"))
    assert fake.requests[-1]["messages"][1:] == [
        {"role": "user", "content": "remember the milk"},
        {"role": "assistant", "content": "You said: remember the milk"},
        {"role": "user", "content": "what did I say?"}]


@pytest.mark.asyncio
async def test_narration_reaches_every_tab_of_the_profile(app_url, app, fake):
    app.state.profile = 2
    async with tab(app_url) as other_profile:
        app.state.profile = 1
        async with tab(app_url) as first, tab(app_url) as second:
            httpx.post(f"{app_url}/narrate", data={"text": "added todo 'milk'"}).raise_for_status()
            note = [("div", {"hx-swap-oob": "beforeend:#chat-log"}, None, [
                ("div", {"class": "msg note"}, "added todo 'milk'", [])])]
            assert shape(await first.receive_until(showing("msg note"))) == note
            assert shape(await second.receive_until(showing("msg note"))) == note
            assert await other_profile.silent()
            await first.answer(await first.ask("what did I do?"))
    assert user_turns(fake.requests[-1]) == ["Note: added todo 'milk'\n\nwhat did I do?"]


@pytest.mark.asyncio
async def test_narration_can_ask_for_a_comment_in_every_tab(app_url, app, fake):
    fake.tokens = ["Milk", " again?"]
    async with tab(app_url) as first, tab(app_url) as second:
        httpx.post(f"{app_url}/narrate", data={"text": "added todo 'milk'", "comment": 1}).raise_for_status()
        rid = reply_id(await first.receive_until(showing("msg note")))
        assert reply_id(await second.receive_until(showing("msg note"))) == rid
        assert [await first.answer(rid), await second.answer(rid)] == ["Milk again?", "Milk again?"]
    assert chunks(first.frames, rid) == chunks(second.frames, rid) == ["Milk", " again?"]
    assert user_turns(fake.requests[-1]) == [f"Note: added todo 'milk'\n\n{COMMENT_REQUEST}"]
    assert [m["role"] for m in app.state.chat.history(1)] == ["note", "assistant"]


@pytest.mark.asyncio
async def test_a_message_sent_while_a_reply_streams_waits_its_turn(app_url, fake):
    fake.delay = 0.05
    async with tab(app_url) as t:
        first = await t.ask("one two three four five")
        second = await t.ask("six")  # sent while the first reply streams: it shows at once, is answered next
        assert final_text(t.frames, first) is None
        assert await t.answer(first) == "You said: one two three four five"
        assert await t.answer(second) == "You said: six"
    first_done = next(i for i, f in enumerate(t.frames) if final_text([f], first) is not None)
    assert first_done < min(i for i, f in enumerate(t.frames) if chunks([f], second))
    assert fake.requests[1]["messages"][-2:] == [
        {"role": "assistant", "content": "You said: one two three four five"}, {"role": "user", "content": "six"}]


@pytest.mark.asyncio
async def test_each_tab_gets_its_own_replies(app_url, fake):
    async with tab(app_url) as first, tab(app_url) as second:
        ours, theirs = await first.ask("from the first"), await second.ask("from the second")
        assert await second.answer(theirs) == "You said: from the second"
        assert await first.answer(ours) == "You said: from the first"
        assert await first.silent(0.3) and await second.silent(0.3)
    assert not any(theirs in f for f in first.frames) and not any(ours in f for f in second.frames)


# --- faults: each a clear message in the chat, and the app keeps working ---

@pytest.mark.asyncio
async def test_llm_not_running(app_url, backend):
    backend.url = f"http://127.0.0.1:{free_port()}"
    async with tab(app_url) as t:
        assert await t.answer(await t.ask("hello?")) == ""
    [error] = errors(t.frames)
    assert backend.url in error
    if isinstance(backend, Ollama): assert "`ollama serve`" in error and "OLLAMA_HOST" in error
    else: assert "OPENAI_BASE_URL" in error
    assert error in html.unescape(httpx.get(f"{app_url}/chat/models").text)  # the picker says why it is empty
    assert httpx.get(app_url).status_code == 200


@pytest.mark.asyncio
async def test_something_else_at_the_llm_address(app_url, backend):
    def web_page(request): return HTMLResponse("<h1>Hi</h1>")
    not_an_llm = Starlette(routes=[Route("/{path:path}", web_page, methods=["POST"])])
    with running(not_an_llm) as elsewhere:
        async with tab(app_url) as t:
            for backend.url in (app_url, elsewhere):  # a 404 page, then a 200 that is no API
                await t.answer(await t.ask("hello?"))
    assert errors(t.frames) == [
        f"{backend.name} answered 404 at {app_url}{backend.chat_path}: 404 Not Found",
        f"The server at {elsewhere} does not speak {backend.api}: it sent '<h1>Hi</h1>'. Check {backend.setting}."]


@pytest.mark.asyncio
async def test_model_not_found(app_url, app, backend, fake):
    app.state.store["chat_model"] = "mistral"
    async with tab(app_url) as t:
        await t.answer(await t.ask("hello?"))
        [error] = errors(t.frames)
        assert "no model 'mistral'" in error
        if isinstance(backend, Ollama): assert "`ollama pull mistral`" in error
        app.state.store["chat_model"] = "qwen2.5:7b"
        assert await t.answer(await t.ask("and now?")) == "You said: and now?"


@pytest.mark.asyncio
async def test_error_mid_stream_keeps_the_partial_reply(app_url, app, fake):
    fake.error_after = 2
    async with tab(app_url) as t:
        rid = await t.ask("tell me more")
        assert await t.answer(rid) == "You said:"
    [error] = errors(t.frames)
    assert shape(t.frames[-1])[1] == ("div", {"hx-swap-oob": f"afterend:#{rid}"}, None, [
        ("div", {"class": "msg error"}, error, [])])  # right under the partial reply
    assert error.endswith("stopped with an error: an error was encountered while running the model: unexpected EOF")
    assert app.state.chat.history(1)[-1]["content"] == "You said:"


@pytest.mark.asyncio
async def test_a_stalled_stream_times_out(app_url, backend, fake):
    fake.stall_after, backend.timeout = 2, 0.5
    async with tab(app_url) as t:
        assert await t.answer(await t.ask("tell me more")) == "You said:"
        [error] = errors(t.frames)
        assert "sent nothing for 0.5 s" in error and "LLM_TIMEOUT" in error
        fake.stall_after = None
        assert await t.answer(await t.ask("again")) == "You said: again"
    assert await eventually(lambda: fake.aborted == 1)  # the stalled stream was closed, not left open


@pytest.mark.asyncio
async def test_a_wrong_api_key(tmp_path, fake):
    fake.api_key = "sk-right"
    backend = OpenAICompatible(f"{fake.url}/v1", "llama3.2:latest", timeout=5, api_key="sk-wrong")
    with running(chat_app(tmp_path / "app.db", backend)) as url:
        async with tab(url) as t:
            await t.answer(await t.ask("hello?"))
    assert errors(t.frames) == [f"The server at {backend.url} refused the API key (401). Set OPENAI_API_KEY."]


@pytest.mark.asyncio
@pytest.mark.parametrize("moment", ["streaming", "stalled"])
async def test_upstream_closes_when_the_browser_goes_away(app_url, app, fake, moment):
    fake.tokens, fake.delay = [f" t{n}" for n in range(100)], 0.05
    if moment == "stalled": fake.stall_after = 1
    async with tab(app_url) as t:
        await t.first_chunk(await t.ask("go on"))
    assert await eventually(lambda: fake.aborted == 1, timeout=2)  # the fake saw its response abandoned
    assert await eventually(lambda: not app.state.chat.jobs, timeout=1)  # and no task is left reading
    assert fake.finished == 0
