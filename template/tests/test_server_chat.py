"""The chat streams the LLM's reply over /ws, keeps the conversation per profile, stops a reply when asked, says
whether the LLM is there before anything is sent, and fails in words a person can use.

Every test runs against both backends (Ollama's API and the OpenAI-compatible one) served by the fake LLM, through
Starlette's TestClient or, for timing and many tabs, a real WebSocket client against the app under uvicorn."""

import asyncio
import gzip
import html
import json
import re
import time
from contextlib import asynccontextmanager

import httpx
import pytest
import websockets
from fastlite import database
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from core.chat import Ollama, OpenAICompatible, backend_from_env, history, panel, streaming as streaming_module
from core.chat.conversation import COMMENT_REQUEST
from chat_app import Node, chat_app, html_tree
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
    monkeypatch.setattr(history, "SYSTEM_PROMPT", tmp_path / "system.md")


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
    "A frame as (tag, attributes, text, children) trees, text being the element's own leading text."
    def tree(node):
        text = node.children[0] if node.children and isinstance(node.children[0], str) else None
        return (node.tag, node.attrs, text, [tree(c) for c in node.children if isinstance(c, Node)])
    return [tree(node) for node in html_tree(fragment).children if isinstance(node, Node)]


def elements(frames):
    for fragment in frames: yield from list(html_tree(fragment).iter())[1:]


def reply_id(echo: str) -> str:
    return next(e.get("id") for e in elements([echo]) if e.classes[:2] == ["msg", "assistant"])


def chunks(frames, rid) -> list[str]:
    "The plain text added to reply rid, frame by frame."
    return [e.text for e in elements(frames) if e.get("hx-swap-oob") == f"beforeend:#{rid}-tail"]


def finished(frames, rid) -> Node | None:
    "Reply rid once it is marked done, else None."
    return next((e for e in elements(frames) if e.get("id") == rid and "done" in e.classes), None)


def final_text(frames, rid) -> str | None:
    "The text of reply rid once it is marked done (its rendered Markdown, without the buttons), else None."
    reply = finished(frames, rid)
    return None if reply is None else (reply.find(lambda e: "md" in e.classes) or reply).text.strip()


def shown(frames, rid) -> list[str]:
    "What reply rid shows after each frame that changed it: rendered Markdown so far, then the plain text since."
    rendered, tail, states = "", "", []
    for fragment in frames:
        changed = False
        for e in html_tree(fragment).children:
            if not isinstance(e, Node): continue
            swap = e.get("hx-swap-oob")
            if swap == f"innerHTML:#{rid}-md": rendered, changed = e.text, True
            elif swap == f"innerHTML:#{rid}-tail": tail, changed = e.text, True
            elif swap == f"beforeend:#{rid}-tail": tail, changed = tail + e.text, True
            elif e.get("id") == rid and "done" in e.classes:
                rendered, tail, changed = (e.find(lambda n: "md" in n.classes) or Node("div", {})).text, "", True
        if changed: states.append(" ".join((rendered + tail).split()))
    return states


def errors(frames) -> list[str]:
    return [e.text for e in elements(frames) if e.classes == ["msg", "error"]]


def stop_buttons(frames) -> list[str | None]:
    "The reply each Stop button sent was for, None where it was hidden."
    return [None if "hidden" in e.attrs else json.loads(e.get("hx-vals"))["reply"]
            for e in elements(frames) if e.get("id") == "chat-stop"]


def start_tags(page: str) -> list[tuple[str, dict]]:
    return [(e.tag, e.attrs) for e in list(html_tree(page).iter())[1:]]


def bubbles(page: str) -> list[tuple[str, str]]:
    "The (class, text) of each message in a page's chat log; a reply's text is its rendered Markdown."
    log = html_tree(page).find(lambda e: e.get("id") == "chat-log")
    def text(e): return (e.find(lambda n: "md" in n.classes) or e).text.strip()
    return [(e.get("class"), text(e)) for e in log.children if isinstance(e, Node)]


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

    async def first_text(self, rid: str) -> str:
        "What reply rid shows first."
        return shown([await self.receive_until(lambda f: shown([f], rid))], rid)[0]

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

def test_reply_streams_in_order_and_finishes_as_markdown(app, fake):
    fake.tokens = ["Hello", ",", " **wor", "ld**"]
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        rid, frames = exchange(ws, "hi")
        page = client.get("/").text
    assert shape(frames[0]) == [("div", {"hx-swap-oob": "beforeend:#chat-log"}, None, [
        ("div", {"class": "msg user"}, "hi", []),
        ("div", {"class": "msg assistant", "id": rid}, None, [
            ("div", {"class": "md", "id": f"{rid}-md"}, None, []),
            ("span", {"class": "tail", "id": f"{rid}-tail"}, None, [])])])]
    assert stop_buttons(frames) == [rid, None]  # shown while it streams, hidden once it is done
    assert all("Hello, **world**".startswith(state) or state == "Hello, world" for state in shown(frames, rid))
    [done] = shape(frames[-1])[:1]
    assert done == ("div", {"class": "msg assistant done", "data-markdown": "Hello, **world**", "id": rid,
                            "hx-swap-oob": "true"}, None, [
        ("div", {"class": "md"}, None, [("p", {}, "Hello, ", [("strong", {}, "world", [])])]),
        ("div", {"class": "reply-actions"}, None, [
            ("button", {"type": "button", "aria-label": "Copy this reply", "class": "copy outline secondary"},
             "Copy", [])])])
    assert bubbles(page) == [("msg user", "hi"), ("msg assistant done", "Hello, world")]


def test_sends_the_system_prompt_and_a_bounded_history(app, fake, monkeypatch):
    monkeypatch.setitem(history.SETTINGS, "chat_history_limit", 4)
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
    assert bubbles(page) == [("msg user", attack), ("msg assistant done", f"You said: {attack}")]


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
        assert shape(ws.receive_text()) == [("div", {"id": "chat-log", "data-empty": panel.EMPTY_HINT,
                                                     "hx-swap-oob": "true"}, None, [])]
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
        assert await t.first_text(rid) == "One"
        first = time.monotonic() - started
        assert fake.finished == 0  # forwarded before the LLM had written the rest
        assert await t.answer(rid) == "One two three four"
        assert time.monotonic() - started > first + 0.5
    assert list(dict.fromkeys(shown(t.frames, rid))) == ["One", "One two", "One two three", "One two three four"]


@pytest.mark.asyncio
async def test_the_app_keeps_one_client_for_the_llm_and_closes_it_as_it_stops(app, backend):
    with running(app) as url:
        async with tab(url) as t:
            assert await t.answer(await t.ask("hello?")) == "You said: hello?"
            kept = backend.client
            backend.url = backend.url.replace("127.0.0.1", "localhost")  # the same fake LLM, at another address
            assert await t.answer(await t.ask("again?")) == "You said: again?"
            assert backend.client is kept
    assert kept.is_closed and backend.client is None


@pytest.mark.asyncio
async def test_history_survives_a_restart(tmp_path, backend, fake):
    with running(chat_app(tmp_path / "app.db", backend)) as url:
        async with tab(url) as t:
            await t.answer(await t.ask("remember the milk"))
    with running(chat_app(tmp_path / "app.db", backend)) as url:
        assert bubbles(httpx.get(url).text) == [
            ("msg user", "remember the milk"), ("msg assistant done", "You said: remember the milk")]
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
    assert shown(first.frames, rid) == shown(second.frames, rid)
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
    assert first_done < min(i for i, f in enumerate(t.frames) if shown([f], second))
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
    if isinstance(backend, Ollama): assert "Start it with ollama serve (" in error and "OLLAMA_HOST" in error
    else: assert "OPENAI_BASE_URL" in error
    assert not [f for f in t.frames if "`" in f]  # the commands show as code, not in backticks
    picker = httpx.get(f"{app_url}/chat/models").text
    assert error in html.unescape(re.sub("<[^>]+>", "", picker))  # the picker says why it is empty
    assert "<code>ollama serve</code>" in picker or not isinstance(backend, Ollama)
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
async def test_a_compressed_stream_reads_as_well():
    "The chat reads an LLM's stream raw unless it is compressed (a proxy in front of the server, say)."
    lines = b"".join(json.dumps({"message": {"content": word}}).encode() + b"\n" for word in ("Hel", "lo"))

    def compressed(request):
        return Response(gzip.compress(lines), headers={"content-encoding": "gzip"}, media_type="application/x-ndjson")
    with running(Starlette(routes=[Route("/api/chat", compressed, methods=["POST"])])) as url:
        assert [chunk async for chunk in Ollama(url, "llama3.2", timeout=5).stream("llama3.2", [])] == ["Hello"]


@pytest.mark.asyncio
async def test_model_not_found(app_url, app, backend, fake):
    app.state.store["chat_model"] = "mistral"
    async with tab(app_url) as t:
        await t.answer(await t.ask("hello?"))
        [error] = errors(t.frames)
        assert "no model 'mistral'" in error
        if isinstance(backend, Ollama): assert "Install it with ollama pull mistral," in error  # shown as code
        app.state.store["chat_model"] = "qwen2.5:7b"
        assert await t.answer(await t.ask("and now?")) == "You said: and now?"


@pytest.mark.asyncio
async def test_error_mid_stream_keeps_the_partial_reply(app_url, app, fake):
    fake.error_after = 2
    async with tab(app_url) as t:
        rid = await t.ask("tell me more")
        assert await t.answer(rid) == "You said:"
    [error] = errors(t.frames)
    assert shape(t.frames[-1])[2] == ("div", {"hx-swap-oob": f"afterend:#{rid}"}, None, [
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
        await t.first_text(await t.ask("go on"))
    assert await eventually(lambda: fake.aborted == 1, timeout=2)  # the fake saw its response abandoned
    assert await eventually(lambda: not app.state.chat.tabs.jobs, timeout=1)  # and no task is left reading
    assert fake.finished == 0


# --- Stop, status, keeping the conversation

@pytest.mark.asyncio
@pytest.mark.parametrize("moment", ["streaming", "stalled"])
async def test_stop_ends_the_reply_at_once_keeps_what_arrived_and_the_queue_goes_on(app_url, app, fake, moment):
    fake.tokens, fake.delay = [f" t{n}" for n in range(400)], 0.02  # 8 s of reply, or a stall
    if moment == "stalled": fake.stall_after = 3
    async with tab(app_url) as t:
        first = await t.ask("go on")
        await t.receive_until(lambda f: stop_buttons([f]) == [first])
        await t.receive_until(lambda f: "t2" in "".join(shown([f], first)))  # stalled after three, if so scripted
        fake.tokens, fake.stall_after = None, None  # the queued message gets the echo, in full
        second = await t.ask("and then?")
        await asyncio.sleep(0.1)
        stopped = time.monotonic()
        httpx.post(f"{app_url}/chat/stop", data={"reply": first}).raise_for_status()
        kept = await t.answer(first)
        assert time.monotonic() - stopped < 2  # at once, not when the reply would have ended
        assert await eventually(lambda: fake.aborted == 1)  # the LLM saw its stream closed
        assert await t.answer(second) == "You said: and then?"
    reply = finished(t.frames, first)
    assert "stopped" in reply.classes and reply.find(lambda e: "stopped-mark" in e.classes).text == "Stopped"
    arrived = len(kept.split())
    assert kept == " ".join(f"t{n}" for n in range(arrived))
    assert arrived == 3 if moment == "stalled" else arrived < 400
    assert errors(t.frames) == []
    assert [(m["role"], m["content"], m["stopped"]) for m in app.state.chat.history(1)] == [
        ("user", "go on", 0), ("assistant", reply.get("data-markdown"), 1),
        ("user", "and then?", 0), ("assistant", "You said: and then?", 0)]
    assert bubbles(httpx.get(app_url).text)[1] == ("msg assistant done stopped", kept)  # still marked after a reload
    assert fake.requests[1]["messages"][-2]["content"] == reply.get("data-markdown")


@pytest.mark.asyncio
async def test_stop_for_a_finished_or_unknown_reply_does_nothing(app_url, fake):
    async with tab(app_url) as t:
        rid = await t.ask("hi")
        assert await t.answer(rid) == "You said: hi"
        for reply in (rid, "reply-unknown", ""):
            assert httpx.post(f"{app_url}/chat/stop", data={"reply": reply}).status_code == 200
        assert await t.silent(0.2)


def test_status_says_whether_the_llm_answers_and_has_the_model(app, backend, fake):
    def status(page): return html_tree(page).find(lambda e: e.get("id") == "chat-status")
    with TestClient(app) as client:
        picker = html_tree(client.get("/chat/models").text)
        label = picker.find(lambda e: e.tag == "label")
        assert (label.text, label.get("for")) == ("Model", "chat-model")  # a visible label for the select
        ready = status(client.get("/chat/status").text)
        assert ready.classes == ["ready"]
        assert ready.text == f"{backend.default_model} is ready ({backend.name} at {backend.url})."
        assert ready.get("hx-trigger") == "focus from:#chat-model, htmx:afterRequest from:#chat-model"

        app.state.store["chat_model"] = "mistral"
        missing = status(client.get("/chat/status").text)
        assert missing.classes == ["fault"]
        assert "no model 'mistral' (it has llama3.2:latest, qwen2.5:7b)" in missing.text
        if isinstance(backend, Ollama): assert "Install it with ollama pull mistral," in missing.text
        options = [e.get("value") for e in html_tree(client.get("/chat/status").text).iter() if e.tag == "option"]
        assert options == ["mistral", "llama3.2:latest", "qwen2.5:7b"]  # the picker's options, refreshed

        backend.url = f"http://127.0.0.1:{free_port()}"
        down = status(client.get("/chat/status").text)
        shown = backend.unreachable().replace("`", "")  # its commands as code
        assert down.classes == ["fault"] and down.text == shown
        assert status(client.get("/chat/models").text).text == shown


def test_an_empty_chat_shows_a_hint(app, fake):
    with TestClient(app) as client:
        log = html_tree(client.get("/").text).find(lambda e: e.get("id") == "chat-log")
    assert log.children == [] and log.get("data-empty") == panel.EMPTY_HINT


def test_the_conversation_downloads_as_markdown(app, fake):
    fake.tokens = ["Use **a list**:\n\n", "- one\n- two"]
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        exchange(ws, "What should I do?")
        client.post("/narrate", data={"text": "added todo 'milk'"})
        ws.receive_text()
        response = client.get("/chat/download")
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="chat-\d{4}-\d\d-\d\d-\d{4}\.md"',
                        response.headers["content-disposition"])
    title, rest = response.text.split("\n\n", 1)
    assert re.fullmatch(r"# Chat with llama3\.2(:latest)?, \d{4}-\d\d-\d\d \d\d:\d\d", title)
    assert rest == ("## You\n\nWhat should I do?\n\n## Assistant\n\nUse **a list**:\n\n- one\n- two\n\n"
                    "> Note: added todo 'milk'\n")


@pytest.mark.asyncio
async def test_a_streaming_reply_is_rendered_as_it_grows(app_url, fake, monkeypatch):
    monkeypatch.setattr(streaming_module, "RENDER_EVERY", 0.05)
    fake.tokens, fake.delay = ["# Plan", "\n\n", "- **first**", "\n", "- second", "\n", "- `third`", "\n\n"] * 2, 0.04
    async with tab(app_url) as t:
        rid = await t.ask("plan")
        await t.answer(rid)
    renderings = [e for e in elements(t.frames) if e.get("hx-swap-oob") == f"innerHTML:#{rid}-md"]
    assert renderings and any(e.find(lambda n: n.tag == "strong") for e in renderings)
    def words(state): return " ".join(re.sub(r"[#*`-]", " ", state).split())
    states = [words(state) for state in shown(t.frames, rid)]
    assert states[-1] == "Plan first second third Plan first second third"
    assert all(states[-1].startswith(state) for state in states), states  # it only ever grows


@pytest.mark.asyncio
async def test_what_arrives_while_a_send_is_in_flight_goes_out_in_one_frame():
    sent, release, arrived = [], asyncio.Event(), asyncio.Event()

    async def slow_send(html):
        sent.append(html)
        if len(sent) == 2: await release.wait()  # the frame with the first text takes its time

    async def llm():
        yield "first"
        while len(sent) < 2: await asyncio.sleep(0)
        for n in range(50): yield f" {n}"
        arrived.set()
        await release.wait()
        yield " last"

    streaming = streaming_module.Streaming("reply-x", slow_send, first="<button>Stop</button>")
    running = asyncio.create_task(streaming.run(llm()))
    await arrived.wait()
    await asyncio.sleep(0.01)
    assert len(sent) == 2
    release.set()
    await running
    assert streaming.text == "first" + "".join(f" {n}" for n in range(50)) + " last"
    assert sent[0] == "<button>Stop</button>"
    assert [chunks([html], "reply-x") for html in sent[1:3]] == [["first"], ["".join(f" {n}" for n in range(50))]]


def test_a_history_from_before_the_stopped_mark_is_kept(tmp_path, backend):
    old = database(tmp_path / "app.db")
    old.t.chat_message.create(id=int, profile_id=int, role=str, content=str, pk="id")
    old.t.chat_message.insert(profile_id=1, role="assistant", content="An *old* reply")
    with TestClient(chat_app(tmp_path / "app.db", backend)) as client:
        assert bubbles(client.get("/").text) == [("msg assistant done", "An old reply")]
