"""An attacker's requests, each refused before any route runs and changing nothing (guard.py): other sites' writes
and reads, rebound Hosts, foreign WebSockets, oversized, non-text and non-UTF-8 input; and logged paths that try to
forge a line. The app's own pages and scripts still pass."""

import asyncio
import re
import sys

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from core import guard
from core.assistant_tools import Card
from conftest import not_shipped, shipped

HX = {"HX-Request": "true"}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
EVIL = "http://evil.example"
pytestmark = shipped("plugins/010_todos.py")  # the todo list is the app its requests aim at
# What a page of another site makes a browser send, header by header (a browser sends no Origin with a GET).
CROSS_SITE = {
    "Origin and Sec-Fetch-Site": {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
    "Origin alone (a browser without Fetch Metadata)": {"Origin": EVIL},
    "Sec-Fetch-Site alone": {"Sec-Fetch-Site": "cross-site"},
    "a form POST followed as a link": {"Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                                       "Sec-Fetch-Dest": "document"},
    "a sandboxed frame (null Origin)": {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    "a null Origin alone": {"Origin": "null"},
    "another local server (JupyterLab's port)": {"Origin": "http://127.0.0.1:8888", "Sec-Fetch-Site": "same-site"},
    "another port, Sec-Fetch-Site alone": {"Sec-Fetch-Site": "same-site"},
    "https on another site": {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    "Referer alone (a browser that sends no Origin)": {"Referer": f"{EVIL}/page.html"},
}


@pytest.fixture
def port(server): return server.config.PORT


@pytest.fixture
def own(port): return f"http://127.0.0.1:{port}"


@pytest.fixture
def app_data(server, client, tmp_path, monkeypatch):
    "A todo, a second profile and a URL-checker run to aim at; snapshot() is everything the app keeps."
    if reason := not_shipped("plugins/010_todos.py", "plugins/020_url_checker.py"): pytest.skip(reason)
    if "core.botify" in sys.modules: monkeypatch.setattr(sys.modules["core.botify"], "TOKEN_FILE", tmp_path / "token.txt")
    todo = re.search(r'id="todo-(\d+)"', client.post("/todos", data={"title": "mine"}, headers=HX).text)[1]
    profile = re.findall(r'id="profile-(\d+)"', client.post("/profiles", data={"name": "Work"}, headers=HX).text)[-1]
    key = "20260101-000000-abcd"
    assert client.post(f"/url_checker/runs/{key}/steps/urls", data={"text": "example.com"}).status_code == 200
    card = None
    if "add_todo" in server.TOOLS.named:  # a card the assistant proposed, waiting for the person's click
        card = Card(server.TOOLS.named["add_todo"], {"title": "forged"}, server.active_profile().id)
        server.TOOLS.cards[card.id] = card

    def snapshot():
        token = sys.modules["core.botify"].TOKEN_FILE.exists() if "core.botify" in sys.modules else None
        return {table.name: sorted(map(str, table.rows)) for table in server.db.t} | {"token file": token}

    return {"todo_id": todo, "profile_id": profile, "key": key, "step_id": "urls", "card": card and card.id,
            "snapshot": snapshot}


def writes(server, app_data):
    "Every state-changing route of the app, its path filled in with things that exist."
    for route in server.app.routes:
        for method in sorted(WRITES & set(getattr(route, "methods", None) or ())):
            yield method, re.sub(r"{(\w+)}", lambda name: app_data[name[1]], route.path)


FIELDS = {"title": "forged", "name": "forged", "model": "evil-model", "token": "attacker-token-0123456789",
          "text": "http://10.0.0.1/", "concurrency": "10", "timeout": "10", "order": "1"}


def send(client, method: str, path: str, headers: dict, **body):
    return client.request(method, path, headers=HX | headers, **({"data": FIELDS} | body))


# --- Other sites

@pytest.mark.parametrize("headers", CROSS_SITE.values(), ids=CROSS_SITE.keys())
def test_no_other_site_can_change_anything(server, client, app_data, headers):
    before, aimed = app_data["snapshot"](), list(writes(server, app_data))
    assert len(aimed) >= 10, aimed
    for method, path in aimed:
        answer = send(client, method, path, headers)
        assert answer.status_code == 403, (method, path, answer.text)
        assert "only this app's own pages" in answer.text and answer.headers["HX-Retarget"] == "#message"
    assert app_data["snapshot"]() == before


@pytest.mark.parametrize("headers", [{"Origin": "{own}", "Sec-Fetch-Site": "same-origin"},
                                     {"Origin": "http://localhost:{port}", "Sec-Fetch-Site": "same-origin"},
                                     {"Origin": "{own}"}, {"Referer": "{own}/todos"}, {"Sec-Fetch-Site": "none"}, {}],
                         ids=["own page", "own page as localhost", "own Origin alone", "own Referer alone",
                              "typed by the person", "a script (none of these headers)"])
def test_the_apps_own_pages_and_scripts_may_write(client, own, port, headers):
    headers = {name: value.format(own=own, port=port) for name, value in headers.items()}
    added = client.post("/todos", data={"title": "from my page"}, headers=HX | headers)
    assert added.status_code == 200 and "from my page" in added.text
    todo = re.search(r"todo-(\d+)", added.text)[1]
    assert client.delete(f"/todos/{todo}", headers=HX | headers).status_code == 200


@pytest.mark.parametrize("mode", ["cors", "no-cors"])
def test_no_other_site_can_read_a_page(client, app_data, mode):
    for site in ("cross-site", "same-site"):
        fetched = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode, "Sec-Fetch-Dest": "empty"}
        answer = client.get("/todos", headers=fetched)
        assert answer.status_code == 403 and "mine" not in answer.text
    answer = client.get("/todos", headers={"Origin": EVIL})  # a cross-origin fetch of a browser without Fetch Metadata
    assert answer.status_code == 403 and "mine" not in answer.text


def test_a_link_from_another_site_opens_the_app(client):
    "The person follows a link to the app (from JupyterLab, say): a top-level GET navigation passes."
    link = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    assert client.get("/todos", headers=link).status_code == 200
    assert client.get("/todos", headers=link | {"Sec-Fetch-Dest": "iframe"}).status_code == 403


def test_no_page_can_be_shown_inside_another_site(client):
    for path in ("/todos", "/profiles", "/static/app.css", "/no-such-page"):
        headers = client.get(path).headers
        assert headers["X-Frame-Options"] == "DENY", path
        assert headers["Content-Security-Policy"] == "frame-ancestors 'none'"
        assert headers["X-Content-Type-Options"] == "nosniff"


# --- Hosts (DNS rebinding: another name made to resolve to 127.0.0.1)

@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1:1", "localhost",
                                  "localhost.evil.example:{port}", "127.0.0.1:{port}.evil.example", "127.0.0.2:{port}",
                                  ""])
def test_a_request_for_another_host_is_refused(client, app_data, port, host):
    host = host.format(port=port)
    before = app_data["snapshot"]()
    page = client.get("/todos", headers={"Host": host})
    assert page.status_code == 400 and "mine" not in page.text and "ALLOWED_HOSTS" in page.text
    for method, path in (("POST", "/todos"), ("PUT", f"/todos/{app_data['todo_id']}"),
                         ("DELETE", f"/todos/{app_data['todo_id']}"), ("POST", "/chat/model")):
        assert send(client, method, path, {"Host": host}).status_code == 400
    # the rebound page's own requests are same-origin for the browser, so they carry its Origin too
    assert send(client, "POST", "/todos", {"Host": host, "Origin": f"http://{host}",
                                           "Sec-Fetch-Site": "same-origin"}).status_code == 400
    assert app_data["snapshot"]() == before


def test_the_app_answers_to_its_loopback_names_on_its_port(client, port):
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LocalHost:{port}"):
        assert client.get("/todos", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_adds_names(server, client, monkeypatch):
    monkeypatch.setattr(server.config, "ALLOWED_HOSTS", ["app.lan", "192.168.1.20:5001"])
    for host in ("app.lan", "192.168.1.20:5001"):
        page = {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"}
        assert client.post("/todos", data={"title": host}, headers=page).status_code == 200
    assert client.get("/todos", headers={"Host": "app.lan:5001"}).status_code == 400  # as listed, nothing more


def test_the_address_it_is_bound_to_is_its_own(server, client, monkeypatch, port):
    monkeypatch.setattr(server.config, "HOST", "192.168.1.20")
    assert client.get("/todos", headers={"Host": f"192.168.1.20:{port}"}).status_code == 200
    monkeypatch.setattr(server.config, "HOST", "0.0.0.0")  # every interface: it names none
    assert client.get("/todos", headers={"Host": f"0.0.0.0:{port}"}).status_code == 400


def test_the_port_is_the_one_the_request_came_in_on(server):
    "Served by `uvicorn server:app --port 7000`, say: the port the connection came in on counts, not PORT."
    client = TestClient(server.app, base_url="http://127.0.0.1:7000")
    assert client.get("/todos").status_code == 200
    assert client.get("/todos", headers={"Host": f"127.0.0.1:{server.config.PORT}"}).status_code == 400


# --- The chat's WebSocket

@pytest.mark.parametrize("headers", [{"Origin": EVIL}, {"Origin": "null"}, {"Origin": "http://127.0.0.1:8888"},
                                     {"Host": "evil.example", "Origin": EVIL},
                                     {"Host": "evil.example:{port}", "Origin": "http://evil.example:{port}"},
                                     {"Host": "evil.example:{port}"}],
                         ids=["foreign Origin", "null Origin", "another local port", "rebound Host, its Origin",
                              "rebound Host and port, its Origin", "rebound Host alone"])
def test_the_chat_socket_refuses_other_sites_and_hosts(client, port, headers):
    headers = {name: value.format(port=port) for name, value in headers.items()}
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect(f"ws://127.0.0.1:{port}/ws", headers=headers) as ws:
            ws.send_text("not json")
            ws.receive_text()  # an open socket answers this with an error bubble
    assert refused.value.code == 1008


@pytest.mark.parametrize("origin", ["http://127.0.0.1:{port}", "http://localhost:{port}", None])
def test_the_chat_socket_opens_for_the_apps_own_pages(client, port, origin):
    headers = {"Origin": origin.format(port=port)} if origin else {}
    with client.websocket_connect(f"ws://127.0.0.1:{port}/ws", headers=headers) as ws:
        ws.send_text("not json")
        assert "was ignored" in ws.receive_text()


def test_a_frame_nested_too_deep_or_too_big_gets_an_error_bubble(client, port):
    with client.websocket_connect(f"ws://127.0.0.1:{port}/ws") as ws:
        ws.send_text("[" * 100_000)
        assert "the limit is 8 KB" in ws.receive_text()
        ws.send_text('{"msg": ' + "[" * 20_000)  # small, but deeper than Python's parser goes
        assert "was ignored" in ws.receive_text()
        ws.send_text('{"msg": "' + "x" * 10_000 + '"}')
        assert "the limit is 8 KB" in ws.receive_text()
        ws.send_text("still open?")
        assert "was ignored" in ws.receive_text()


# --- Input

def test_a_body_over_the_limit_is_refused(client, app_data):
    before = app_data["snapshot"]()
    too_big = "x" * (guard.MAX_BODY + 1)
    answer = client.post("/todos", data={"title": too_big}, headers=HX)
    assert answer.status_code == 413 and "the limit is 2 MB" in answer.text
    chunks = (b"title=" + b"x" * 65536 for _ in range(guard.MAX_BODY // 65536 + 2))  # sent chunked: no Content-Length
    answer = client.post("/chat/model", content=chunks, headers={"Content-Type": guard.FORM})
    assert answer.status_code == 413
    url_list = "\n".join(f"https://example.com/{n}" for n in range(110_000))
    answer = client.post("/url_checker/runs/20260101-000000-0000/steps/urls", data={"text": url_list}, headers=HX)
    assert answer.status_code == 413
    assert app_data["snapshot"]() == before


def guarded(headers: dict, body: list[bytes]):
    "Runs one POST through the Guard alone: what it answered, how many body messages it read, whether the app ran."
    calls, answer, reached = [], [], []

    async def app(scope, receive, send):
        reached.append(await receive())

    async def receive():
        calls.append(body[len(calls)])
        if calls[-1] is None: return {"type": "http.disconnect"}
        return {"type": "http.request", "body": calls[-1], "more_body": len(calls) < len(body)}

    async def send(message): answer.append(message)
    scope = {"type": "http", "method": "POST", "path": "/todos", "query_string": b"", "server": ("127.0.0.1", 5001),
             "headers": [(name.lower().encode(), value.encode()) for name, value in
                         ({"Host": "127.0.0.1:5001", "Content-Type": guard.FORM} | headers).items()]}
    asyncio.run(guard.Guard(app)(scope, receive, send))
    return answer[0]["status"] if answer else None, len(calls), reached


def test_an_oversized_body_is_refused_before_it_is_read():
    chunk = b"x" * 1024 * 1024
    assert guarded({"Content-Length": str(50 * len(chunk))}, [chunk] * 50) == (413, 0, [])
    assert guarded({"Transfer-Encoding": "chunked"}, [chunk] * 50) == (413, 3, [])  # stops once past 2 MB
    status, read, reached = guarded({"Content-Length": "9"}, [b"title=abc"])
    assert (status, read) == (None, 1) and reached[0]["body"] == b"title=abc"


def test_a_body_cut_short_never_reaches_a_route():
    "The client went away mid-body: the app must not save what came of it."
    assert guarded({"Transfer-Encoding": "chunked"}, [b"title=the+first+half", None]) == (400, 2, [])


@pytest.mark.parametrize("route", ["/todos", "/todos/{todo_id}", "/profiles", "/profiles/{profile_id}", "/chat/model",
                                   "/botify_connect", "/url_checker/runs/20260101-000000-0001/steps/urls",
                                   "/url_checker/runs/{key}/steps/check"])
@pytest.mark.parametrize("body", ["a file", "JSON", "plain text"])
def test_only_text_form_fields_are_taken(server, client, app_data, route, body):
    "A file part where text is expected used to be a 500 on six routes; JSON gave ints and objects for text."
    if route == "/botify_connect" and "core.botify" not in sys.modules: route = "/profiles"
    route = route.format(**app_data)
    method = "PUT" if re.search(r"/\d+$", route) else "POST"
    before = app_data["snapshot"]()
    kwargs = {"a file": {"files": {name: ("x.txt", b"text") for name in FIELDS}, "data": {}},
              "JSON": {"json": {name: {"nested": 1} for name in FIELDS}, "data": None},
              "plain text": {"content": b"title=x", "headers": {"Content-Type": "text/plain"}, "data": None}}[body]
    answer = client.request(method, route, headers=HX | kwargs.pop("headers", {}), **kwargs)
    assert answer.status_code == (422 if body == "a file" else 415), answer.text
    assert ("not files" if body == "a file" else "form fields") in answer.text
    assert answer.headers["HX-Retarget"] == "#message"
    assert app_data["snapshot"]() == before


def multipart(**fields: bytes) -> dict:
    "A request's content and headers: fields as multipart form data, the way FastHTML's Form makes the page send them."
    parts = b"".join(b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (name.encode(), value)
                     for name, value in fields.items())
    return {"content": parts + b"--B--\r\n", "headers": HX | {"Content-Type": "multipart/form-data; boundary=B"}}


def urlencoded(body: bytes) -> dict: return {"content": body, "headers": HX | {"Content-Type": guard.FORM}}


def test_text_that_is_not_utf8_is_refused(client, app_data):
    before = app_data["snapshot"]()
    for body in (urlencoded(b"title=%FF%FEabc"), urlencoded(b"title=caf%E9"), urlencoded(b"title=\xff\xfe"),
                 urlencoded(b"name=%C3"), multipart(title=b"caf\xe9"), multipart(title=b"\xed\xa0\x80")):
        answer = client.post("/todos", **body)
        assert answer.status_code == 400 and "not UTF-8" in answer.text, body
    assert client.post("/todos?title=%E9", headers=HX).status_code == 400  # FastHTML reads fields from the query too
    malformed = multipart(title=b"x") | {"headers": HX | {"Content-Type": "multipart/form-data"}}  # no boundary
    assert client.post("/todos", **malformed).status_code == 400
    assert app_data["snapshot"]() == before


def test_utf8_text_comes_through_whole(client):
    for body in (urlencoded("title=caf%C3%A9+%F0%9F%8D%B5".encode()), urlencoded("title=café 🍵".encode()),
                 multipart(title="café 🍵".encode())):  # percent-encoded, raw, or as the app's own forms send it
        answer = client.post("/todos", **body)
        assert answer.status_code == 200 and "café 🍵" in answer.text


@pytest.mark.parametrize("name", ["x" * 201, "llama3.2\nOLLAMA_HOST=evil", "../../etc/passwd", "a b", "<b>x</b>",
                                  "llama3.2:", ":latest", ""])
def test_a_model_name_is_checked_before_it_is_kept(server, client, name):
    answer = client.post("/chat/model", data={"model": name}, headers=HX)
    assert answer.status_code in (400, 422) and answer.headers["HX-Retarget"] == "#message", answer.text
    assert "chat_model" not in server.store


def test_model_names_of_real_servers_are_taken(server, client):
    for name in ("llama3.2", "qwen2.5:7b", "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
                 "meta-llama/Llama-3.1-8B-Instruct", "x" * 200):
        assert client.post("/chat/model", data={"model": name}, headers=HX).status_code == 200
        assert server.store["chat_model"] == name


def test_a_bad_model_name_kept_by_an_older_version_is_ignored(server, client):
    server.store["chat_model"] = "x" * 2_000_000
    assert server.chat.model == server.chat.backend.default_model
    assert len(client.get("/chat/models").content) < 10_000


# --- The log

def test_a_requested_path_cannot_forge_a_log_line(server, client):
    log = server.config.LOG_DIR / "app.log"
    before = log.read_text(encoding="utf-8").count("\n")
    forged = "2026-12-01 00:00:00,000 INFO Botify token saved"
    for path in (f"/x%0A{forged}", f"/x%0D{forged}", f"/x%E2%80%A8{forged}", "/x%1B[2J%00%7F%C2%85"):
        client.get(path)
    lines = log.read_text(encoding="utf-8").splitlines()[before:]
    assert len(lines) == 4 and not any(line.startswith(forged) for line in lines), lines
    assert f"GET /x\\n{forged} 404" in lines[0]
    assert "GET /x\\x1b[2J\\x00\\x7f\\x85 404" in lines[3]
    assert all(line.isprintable() for line in lines)
