"""Another site open in the person's browser (Chromium, a second local server on another port) attacks the app:
a hidden form POST, no-cors fetches of every kind of body, a read and the chat's WebSocket. Nothing is changed or
read, and the app's log shows that each request did arrive and was refused."""

import re
import time
from contextlib import closing

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from conftest import app_server, needs_chromium, shipped
from fake_ollama import running

pytestmark = [needs_chromium, shipped("plugins/010_todos.py")]  # its writes go to the todo list

ATTACK = """<!doctype html>
<iframe name="sink"></iframe>
<form id="hidden" method="post" action="APP/todos" target="sink" hidden>
  <input name="title" value="forged by a form">
</form>
<script>
async function attack() {
  const app = "APP", seen = [], quietly = (request) => request.catch(() => null);
  document.getElementById("hidden").submit();
  const multipart = new FormData();
  multipart.append("title", "forged by multipart");
  for (const [path, body, headers] of [
      ["/todos", new URLSearchParams({title: "forged by fetch"}), {}],
      ["/todos", multipart, {}],
      ["/todos", "title=forged+as+text", {"Content-Type": "text/plain"}],
      ["/profiles", new URLSearchParams({name: "forged profile"}), {}],
      ["/chat/model", new URLSearchParams({model: "forged-model"}), {}]]) {
    await quietly(fetch(app + path, {method: "POST", mode: "no-cors", body, headers}));
  }
  await quietly(fetch(app + "/todos/1", {method: "DELETE"}));  // preflighted: an OPTIONS request first
  try { seen.push("read " + (await (await fetch(app + "/todos")).text()).length); } catch { seen.push("no read"); }
  seen.push(await new Promise((done) => {
    const ws = new WebSocket(app.replace("http", "ws") + "/ws");
    ws.onopen = () => done("socket open");
    ws.onclose = () => done("socket refused");
  }));
  return seen;
}
</script>"""


def attacker_site(app_url: str) -> Starlette:
    return Starlette(routes=[Route("/", lambda request: HTMLResponse(ATTACK.replace("APP", app_url)))])


def refused_in_log(log_path, count: int, timeout: float = 10) -> list[str]:
    "The app's log lines of refused requests, once there are count of them (the hidden form posts on its own time)."
    deadline = time.monotonic() + timeout
    while True:
        refused = re.findall(r"[A-Z]+ /\S+ 403", log_path.read_text())
        if len(refused) >= count or time.monotonic() > deadline: return refused
        time.sleep(0.1)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"], ids=["another site", "another port of 127.0.0.1"])
def test_a_page_of_another_origin_changes_and_reads_nothing(browser, data_env, tmp_path, host):
    with app_server(data_env) as app_url, httpx.Client(base_url=app_url) as own:
        assert own.post("/todos", data={"title": "mine"}).status_code == 200
        before = own.get("/todos").text
        # Not page_at: the attacker's page fills its console with the errors of what the app refused, as it should.
        with running(attacker_site(app_url)) as evil_url, closing(browser.new_context()) as context:
            page = context.new_page()
            page.goto(evil_url.replace("127.0.0.1", host))
            seen = page.evaluate("attack()")
            refused = refused_in_log(tmp_path / "logs" / "app.log", count=8)
        assert seen == ["no read", "socket refused"]
        assert len(refused) == 8, refused  # each request reached the app, and was turned down
        after = own.get("/todos").text
        assert after == before and "forged" not in after
        assert "forged" not in own.get("/profiles").text
        assert "forged" not in own.get("/chat/models").text
