"""Every route of the core and the todo plugin, through Starlette's TestClient, bad input included."""

import hashlib
import html
import json
import re

import apsw
import pytest

from conftest import ROOT, shipped

HX = {"HX-Request": "true"}  # what htmx sends: the answer is a fragment, not a whole page
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
pytestmark = shipped("plugins/010_todos.py")


def ids(page: str, kind: str) -> list[int]:
    return [int(i) for i in re.findall(rf'id="{kind}-(\d+)"', page)]


def titles(client) -> list[str]:
    page = client.get("/todos").text
    return [html.unescape(t) for t in re.findall(r'<span [^>]*class="title"[^>]*>(.*?)</span>', page)]


def add_todo(client, title: str) -> int:
    response = client.post("/todos", data={"title": title}, headers=HX)
    assert response.status_code == 200, response.text
    return ids(response.text, "todo")[0]


def add_profile(client, name: str) -> int:
    before = set(ids(client.get("/profiles").text, "profile"))
    response = client.post("/profiles", data={"name": name}, headers=HX)
    assert response.status_code == 200, response.text
    (new,) = set(ids(response.text, "profile")) - before
    return new


def active_profile_name(client) -> str:
    return html.unescape(re.search(r"<summary><small>Profile</small> <strong>(.*?)</strong>",
                                   client.get("/profiles").text)[1])


def assert_refused(response, status: int, text: str):
    "A refusal: its status, and a message that htmx puts in the page's message area."
    assert response.status_code == status, response.text
    assert text in response.text and 'class="problem"' in response.text
    assert response.headers["HX-Retarget"] == "#message"


# --- Pages

def test_home_opens_the_first_app(client):
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/todos"


def test_first_run_makes_a_default_profile_and_shows_the_layout(client):
    page = client.get("/todos").text
    assert "<title>Todos · " in page
    assert '<a href="/todos" aria-current="page">Todos</a>' in page
    assert active_profile_name(client) == "Default"
    assert 'id="message"' in page and 'id="todo-list"' in page


def test_every_asset_comes_from_this_server(client):
    page = client.get("/todos").text
    urls = [url for url in re.findall(r'(?:src|href)="([^"]*)"', page) if not url.startswith("#")]  # skip link
    assert urls and all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    for url in urls:
        assert client.get(url).status_code == 200, url
    for asset in ("htmx.min.js", "ws.js", "pico.min.css", "Sortable.min.js", "app.js", "app.css"):
        assert asset in page


def test_vendored_files_match_their_manifest(client):
    manifest = json.loads((ROOT / "static" / "vendor" / "manifest.json").read_text())
    assert set(manifest) == {"htmx.org", "htmx-ext-ws", "@picocss/pico", "sortablejs"}
    for package in manifest.values():
        assert re.fullmatch(r"\d+\.\d+\.\d+", package["version"])
        assert any(name.startswith("LICENSE") for name in package["files"])
        for name, sha256 in package["files"].items():
            assert hashlib.sha256(client.get(f"/static/vendor/{name}").content).hexdigest() == sha256, name


@pytest.mark.parametrize("url", ["/botify_token.txt", "/.sesskey", "/config.py", "/static/../config.py",
                                 "/static/..%2fconfig.py", "/static/%2e%2e/server.py"])
def test_only_static_files_are_served(client, url):
    assert client.get(url).status_code == 404


# --- Todos

def test_add_edit_toggle_and_delete_a_todo(client):
    todo = add_todo(client, "  Buy milk  ")
    assert titles(client) == ["Buy milk"]

    editor = client.get(f"/todos/{todo}/edit", headers=HX).text
    assert 'name="title"' in editor and 'value="Buy milk"' in editor and f'hx-put="/todos/{todo}"' in editor
    assert f'class="title"' in client.get(f"/todos/{todo}", headers=HX).text  # Cancel shows the row again

    edited = client.put(f"/todos/{todo}", data={"title": "Buy oat milk"}, headers=HX)
    assert edited.status_code == 200 and "Buy oat milk" in edited.text
    assert titles(client) == ["Buy oat milk"]

    assert 'class="row done"' in client.post(f"/todos/{todo}/toggle", headers=HX).text
    assert "checked" in client.get(f"/todos/{todo}", headers=HX).text
    assert 'class="row"' in client.post(f"/todos/{todo}/toggle", headers=HX).text

    assert client.delete(f"/todos/{todo}", headers=HX).status_code == 200
    assert titles(client) == []


def test_new_todos_go_last_and_a_reorder_is_kept(client):
    first, second, third = (add_todo(client, title) for title in ("one", "two", "three"))
    assert titles(client) == ["one", "two", "three"]
    response = client.post("/todos/order", data={"order": [third, first, second]}, headers=HX)
    assert response.status_code == 200
    assert titles(client) == ["three", "one", "two"]
    add_todo(client, "four")
    assert titles(client) == ["three", "one", "two", "four"]


def test_each_profile_has_its_own_todos_and_cannot_reach_another_profiles(client):
    mine = add_todo(client, "Default's todo")
    work = add_profile(client, "Work")
    client.post(f"/profiles/{work}/switch", headers=HX)
    assert titles(client) == []
    theirs = add_todo(client, "Work's todo")
    assert titles(client) == ["Work's todo"]

    for response in (client.get(f"/todos/{mine}", headers=HX), client.get(f"/todos/{mine}/edit", headers=HX),
                     client.put(f"/todos/{mine}", data={"title": "stolen"}, headers=HX),
                     client.post(f"/todos/{mine}/toggle", headers=HX), client.delete(f"/todos/{mine}", headers=HX),
                     client.post("/todos/order", data={"order": [theirs, mine]}, headers=HX)):
        assert_refused(response, 404, "Not found")

    default = ids(client.get("/profiles").text, "profile")[0]
    client.post(f"/profiles/{default}/switch", headers=HX)
    assert titles(client) == ["Default's todo"]
    assert 'class="row"' in client.get(f"/todos/{mine}", headers=HX).text  # not toggled from the other profile


# --- Profiles

def test_create_rename_and_switch_profiles(client, server):
    work = add_profile(client, "  Work  ")
    page = client.get("/profiles").text
    assert '<span class="name">Work</span>' in page and f'hx-post="/profiles/{work}/switch"' in page

    editor = client.get(f"/profiles/{work}/edit", headers=HX).text
    assert 'value="Work"' in editor and f'hx-put="/profiles/{work}"' in editor
    assert '<span class="name">Work</span>' in client.get(f"/profiles/{work}", headers=HX).text

    renamed = client.put(f"/profiles/{work}", data={"name": "Client work"}, headers=HX)
    assert renamed.status_code == 200 and '<span class="name">Client work</span>' in renamed.text
    assert 'id="profile-menu"' in renamed.text and 'hx-swap-oob="true"' in renamed.text  # the header follows

    switched = client.post(f"/profiles/{work}/switch", headers=HX)
    assert switched.status_code == 200 and switched.headers["HX-Refresh"] == "true"
    assert server.store["active_profile"] == work
    assert active_profile_name(client) == "Client work"


def test_deleting_a_profile_deletes_its_data_and_only_its_data(client, server):
    add_todo(client, "kept")
    doomed = add_profile(client, "Doomed")
    client.post(f"/profiles/{doomed}/switch", headers=HX)
    add_todo(client, "goes with its profile")

    response = client.delete(f"/profiles/{doomed}", headers=HX)
    assert response.status_code == 200 and f'id="profile-{doomed}"' not in response.text
    assert "<strong>Default</strong>" in response.text  # the menu the answer swaps in names the one taking over
    assert active_profile_name(client) == "Default"  # the active profile was deleted: another one takes over
    assert titles(client) == ["kept"]
    assert [row["title"] for row in server.db.q("select title from todo")] == ["kept"]


def test_a_profile_another_program_switched_to_shows_on_the_next_page(client, server):
    work = add_profile(client, "Work")
    assert active_profile_name(client) == "Default"
    # A notebook's connection, through apsw as the app's (two SQLite libraries in one process break each other's locks)
    notebook = apsw.Connection(str(server.config.DB_PATH))
    notebook.execute("UPDATE store SET value = ? WHERE key = 'active_profile'", [json.dumps(work)])
    notebook.close()
    assert active_profile_name(client) == "Work"


def test_the_last_profile_cannot_be_deleted(client):
    (only,) = ids(client.get("/profiles").text, "profile")
    assert_refused(client.delete(f"/profiles/{only}", headers=HX), 409, "The last profile cannot be deleted")
    assert ids(client.get("/profiles").text, "profile") == [only]


# --- Bad input: a clear answer, and nothing saved or lost

BAD_NAMES = [("", "cannot be empty"), ("   \t ", "cannot be empty"), ("x" * 1001, "is too long: at most 1,000 characters")]


@pytest.mark.parametrize("name, message", BAD_NAMES)
def test_bad_todo_titles_are_refused(client, server, name, message):
    todo = add_todo(client, "original")
    assert_refused(client.post("/todos", data={"title": name}, headers=HX), 422, f"A todo {message}")
    assert_refused(client.put(f"/todos/{todo}", data={"title": name}, headers=HX), 422, f"A todo {message}")
    assert titles(client) == ["original"]


@pytest.mark.parametrize("name, message", BAD_NAMES)
def test_bad_profile_names_are_refused(client, name, message):
    work = add_profile(client, "Work")
    assert_refused(client.post("/profiles", data={"name": name}, headers=HX), 422, f"A profile name {message}")
    assert_refused(client.put(f"/profiles/{work}", data={"name": name}, headers=HX), 422,
                   f"A profile name {message}")
    page = client.get("/profiles").text
    assert len(ids(page, "profile")) == 2 and '<span class="name">Work</span>' in page


def test_a_name_of_exactly_1000_characters_is_accepted(client):
    add_todo(client, "y" * 1000)
    assert titles(client) == ["y" * 1000]


ID_ROUTES = [("get", "/todos/{}"), ("get", "/todos/{}/edit"), ("put", "/todos/{}"), ("post", "/todos/{}/toggle"),
             ("delete", "/todos/{}"), ("get", "/profiles/{}"), ("get", "/profiles/{}/edit"), ("put", "/profiles/{}"),
             ("post", "/profiles/{}/switch"), ("delete", "/profiles/{}")]


def call(client, method: str, url: str):
    data = {"title": "t", "name": "n"} if method in ("post", "put") else None
    return client.request(method, url, data=data, headers=HX)


@pytest.mark.parametrize("method, route", ID_ROUTES)
@pytest.mark.parametrize("unknown", ["999", "99999999999999999999999", "-1", "0"])
def test_unknown_ids_are_404(client, method, route, unknown):
    add_todo(client, "exists")
    assert_refused(call(client, method, route.format(unknown)), 404, "Not found")


@pytest.mark.parametrize("method, route", ID_ROUTES)
@pytest.mark.parametrize("not_a_number", ["abc", "1.5", "1e3", "%20", "1;drop"])
def test_non_numeric_ids_are_4xx_never_500(client, method, route, not_a_number):
    response = call(client, method, route.format(not_a_number))
    assert 400 <= response.status_code < 500, (response.status_code, response.text)


@pytest.mark.parametrize("order", [["abc"], ["1", "x"], ["99999999999999999999999"], []])
def test_a_bad_reorder_is_4xx_and_changes_nothing(client, order):
    add_todo(client, "one"), add_todo(client, "two")
    response = client.post("/todos/order", data={"order": order}, headers=HX)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert titles(client) == ["one", "two"]


def test_user_text_is_escaped_everywhere(client):
    todo = add_todo(client, XSS)
    work = add_profile(client, XSS)
    client.post(f"/profiles/{work}/switch", headers=HX)
    client.post("/todos", data={"title": XSS}, headers=HX)
    pages = [client.get("/todos").text, client.get("/profiles").text, client.get(f"/profiles/{work}/edit").text]
    default = ids(pages[1], "profile")[0]
    client.post(f"/profiles/{default}/switch", headers=HX)
    pages += [client.get(f"/todos/{todo}/edit").text, client.get(f"/todos/{todo}").text]
    for page in pages:
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;" in page


# --- The chat's seam: a panel beside every page, and narration of what the apps do

def test_side_panels_are_drawn_beside_every_page(client, server, monkeypatch):
    from fasthtml.common import Div

    monkeypatch.setattr(server, "SIDE_PANELS", [lambda: Div("side panel", id="side-panel")])
    for url in ("/todos", "/profiles"):
        page = client.get(url).text
        assert '<aside id="side">' in page and 'id="side-panel"' in page


def test_apps_narrate_what_the_user_does_to_the_listeners(client, server, monkeypatch):
    heard = []

    async def listener(profile_id, text, comment=False): heard.append((profile_id, text))

    monkeypatch.setattr(server, "LISTENERS", [listener])
    todo = add_todo(client, "Call the plumber")
    client.post(f"/todos/{todo}/toggle", headers=HX)
    client.delete(f"/todos/{todo}", headers=HX)
    profile = server.store["active_profile"]
    assert heard == [(profile, "Added the todo: Call the plumber"), (profile, "Completed the todo: Call the plumber"),
                     (profile, "Deleted the todo: Call the plumber")]
