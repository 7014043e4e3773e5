"""Live reload: under `./run dev` (DEV=1) the open page reloads itself once the server is back from a saved change,
and a normal start has neither the reload script nor its socket. The servers run from a copy of this fork, which the
test edits as a person would."""

import pytest
import websockets.sync.client
from websockets.exceptions import InvalidStatus

from conftest import app_server, assert_only_local_requests, needs_chromium, page_at

pytestmark = needs_chromium

PLUGIN = '''from fasthtml.common import *

NAME, DISPLAY_NAME = "greeting", "Greeting"


def setup(plugin):
    @plugin.page
    def view(): return H2({text!r})
'''
RESTARTED = 120_000  # ms: time enough for the dev server's restart on a busy machine


def write_plugin(fork, text: str):
    (fork / "plugins" / "900_greeting.py").write_text(PLUGIN.format(text=text))


def reload_socket(url: str) -> str:
    return f"{url.replace('http://', 'ws://')}/live-reload"


def test_the_page_reloads_itself_under_dev_only(browser, fork_copy, data_env, tmp_path):
    from playwright.sync_api import expect

    normal_env = {key: value for key, value in data_env.items() if key != "DEV"}
    dev_env = normal_env | {"DEV": "1", "DATA_DIR": str(tmp_path / "dev-data"), "LOG_DIR": str(tmp_path / "dev-logs")}
    write_plugin(fork_copy, "Hello")
    with (app_server(dev_env, cwd=fork_copy) as dev_url, app_server(normal_env, cwd=fork_copy) as normal_url,
          page_at(browser, dev_url) as dev, page_at(browser, normal_url) as normal):
        sockets = []
        dev.on("websocket", lambda socket: sockets.append(socket.url))
        # Edited before the page's reload socket is open, the page would not know to reload.
        with dev.expect_console_message(lambda message: message.text == "LiveReload connected", timeout=RESTARTED):
            dev.goto("/greeting")
        normal.goto("/greeting")
        for page in (dev, normal):
            expect(page.get_by_role("heading")).to_have_text("Hello")
            page.evaluate("window.unreloaded = true")  # a reload wipes it out

        write_plugin(fork_copy, "Hello again")

        expect(dev.get_by_role("heading")).to_have_text("Hello again", timeout=RESTARTED)
        assert dev.evaluate("window.unreloaded") is None
        # The normal page had the same time: it did not reload, and has nothing that could.
        expect(normal.get_by_role("heading")).to_have_text("Hello")
        assert normal.evaluate("window.unreloaded") is True
        assert "live-reload" not in normal.content() and "live-reload" in dev.content()
        with pytest.raises(InvalidStatus), websockets.sync.client.connect(reload_socket(normal_url), open_timeout=30):
            pass
        assert_only_local_requests(dev.context.requested + normal.context.requested + sockets)
        assert reload_socket(dev_url) in sockets


def test_the_reload_socket_takes_the_app_s_own_pages_only(fork_copy, data_env):
    "The same rule as every request (guard.py): a page of another site may not even learn when the app restarts."
    with app_server(data_env | {"DEV": "1"}, cwd=fork_copy) as url:
        with (pytest.raises(InvalidStatus),
              websockets.sync.client.connect(reload_socket(url), origin="http://evil.example", open_timeout=30)):
            pass
        with websockets.sync.client.connect(reload_socket(url), origin=url, open_timeout=30): pass
